"""An on-disk SQLite cache in front of any backend, so deterministic calls are paid for once.

What is cached:

* generations whose samples are reproducible: ``seed`` is set or
  ``temperature == 0``. Each sample is its own entry, keyed by the inner
  ``model_id``, the prompt, every sampling parameter, the seed and the
  **sample index**, so sample ``i`` and sample ``j`` of one seed never collapse
  into one entry. ``n`` is not in the key: sample ``i`` of a seed is the same
  whether 3 or 5 were asked for. If any sample of a request is missing, the
  whole request is sent again (which keeps the backend's ``seed + i``
  seeding intact) and every sample is stored;
* scores, always, one entry per continuation (only missing ones are asked for);
* choice probabilities, always.

Results read from the cache come back with ``cached=True``. With ``max_bytes``
the cache is bounded: once its values pass that size, the oldest entries are
evicted down to 90% of it (``sfrun serve`` always sets a bound). The database uses
WAL mode, so several processes may share it; within a process all access goes
through one lock on a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from sfdsl.errors import InputError
from sfdsl.log import get_logger
from sfdsl.runtime.backends.base import (
    Backend,
    ChoiceRequest,
    Completion,
    GenerateRequest,
    Prompt,
    ScoreRequest,
    SequenceScore,
)

log = get_logger(__name__)

SCHEMA_VERSION = 1


def default_cache_path() -> Path:
    """Where the cache lives unless told otherwise.

    ``$SFDSL_CACHE_DIR/cache.sqlite`` when that is set, else
    ``$XDG_CACHE_HOME/sfdsl/cache.sqlite``, else ``~/.cache/sfdsl/cache.sqlite``.
    """
    override = os.environ.get("SFDSL_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "cache.sqlite"
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "sfdsl" / "cache.sqlite"


def is_deterministic(request: GenerateRequest) -> bool:
    """Whether a generation can be replayed from the cache: seeded or greedy."""
    return request.seed is not None or request.temperature == 0.0


class CachedBackend(Backend):
    """Wraps a backend with an SQLite cache; owns the inner backend and closes it."""

    def __init__(self, inner: Backend, *, path: str | Path | None = None, max_bytes: int | None = None) -> None:
        """Open (creating if needed) the cache database.

        Args:
            inner: The backend that computes misses.
            path: The SQLite file; defaults to ``default_cache_path()``.
            max_bytes: Evict the oldest entries once the stored values pass this size; None: unbounded.
        """
        if max_bytes is not None and max_bytes < 1:
            raise InputError(f"cache max_bytes must be positive, got {max_bytes}")
        self.inner = inner
        self.max_bytes = max_bytes
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, kind TEXT NOT NULL,"
                " model_id TEXT NOT NULL, value TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS entries_created ON entries (created)")
            self._db.commit()
            self._bytes = self._stored_bytes()
        self.hits = 0
        self.misses = 0

    @property  # type: ignore[override]
    def model_id(self) -> str:
        """The inner backend's identity: a cache does not change the model."""
        return self.inner.model_id

    @property  # type: ignore[override]
    def context_tokens(self) -> int | None:
        return self.inner.context_tokens

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        """Serve every sample from the cache, or ask the inner backend for all of them."""
        return await self._generate(request, None)

    async def generate_stream(self, request: GenerateRequest, sink: Callable[[str], None]) -> list[Completion]:
        """``generate``; a cache hit hands its text to ``sink`` at once, a miss streams from the inner backend."""
        return await self._generate(request, sink)

    async def _generate(self, request: GenerateRequest, sink: Callable[[str], None] | None) -> list[Completion]:
        def ask() -> Awaitable[list[Completion]]:
            return self.inner.generate(request) if sink is None else self.inner.generate_stream(request, sink)

        if not is_deterministic(request):
            return await ask()
        params = request.model_dump(mode="json", exclude={"prompt", "n"})
        keys = [self._key("generate", request.prompt, params, index=i) for i in range(request.n)]
        found = await self._get_many(keys)
        if all(k in found for k in keys):
            self.hits += len(keys)
            hits = [
                Completion.model_validate_json(found[k]).model_copy(update={"cached": True, "index": i})
                for i, k in enumerate(keys)
            ]
            if sink is not None and hits and hits[0].text:
                sink(hits[0].text)
            return hits
        self.misses += len(keys) - len(found)
        completions = await ask()
        stored = [c.model_copy(update={"cached": False, "index": i}) for i, c in enumerate(completions)]
        rows = [(k, c.model_dump_json()) for k, c in zip(keys, stored, strict=True)]
        await self._put_many("generate", rows)
        return completions

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        """Serve cached continuation scores; score only the missing continuations."""
        keys = [self._key("score", request.prompt, {"continuation": c}) for c in request.continuations]
        found = await self._get_many(keys)
        missing = [c for c, k in zip(request.continuations, keys, strict=True) if k not in found]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        fresh: dict[str, SequenceScore] = {}
        if missing:
            unique = tuple(dict.fromkeys(missing))
            scores = await self.inner.score(ScoreRequest(prompt=request.prompt, continuations=unique))
            fresh = dict(zip(unique, scores, strict=True))
            key = {c: k for c, k in zip(request.continuations, keys, strict=True)}
            rows = [(key[c], s.model_dump_json()) for c, s in fresh.items()]
            await self._put_many("score", rows)
        return [
            fresh[c] if c in fresh else SequenceScore.model_validate_json(found[k]).model_copy(update={"cached": True})
            for c, k in zip(request.continuations, keys, strict=True)
        ]

    async def choice_probs(self, request: ChoiceRequest) -> list[float]:
        """Cache the inner backend's answer for this prompt and set of choices."""
        key = self._key("choice", request.prompt, {"choices": list(request.choices)})
        found = await self._get_many([key])
        if key in found:
            self.hits += 1
            return [float(p) for p in json.loads(found[key])]
        self.misses += 1
        probs = await self.inner.choice_probs(request)
        await self._put_many("choice", [(key, json.dumps(probs))])
        return probs

    async def aclose(self) -> None:
        """Close the inner backend, then the database."""
        try:
            await self.inner.aclose()
        finally:
            with self._lock:
                self._db.close()

    async def count(self) -> int:
        """Number of entries in the cache file (all models)."""

        def run() -> int:
            with self._lock:
                return int(self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

        return await asyncio.to_thread(run)

    # -- storage -------------------------------------------------------------

    def _key(self, kind: str, prompt: Prompt, params: dict[str, Any], *, index: int = 0) -> str:
        payload = {
            "v": SCHEMA_VERSION,
            "kind": kind,
            "model_id": self.inner.model_id,
            "prompt": prompt.model_dump(mode="json"),
            "params": params,
            "index": index,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    async def _get_many(self, keys: list[str]) -> dict[str, str]:
        def run() -> dict[str, str]:
            marks = ",".join("?" * len(keys))
            with self._lock:
                rows = self._db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", keys).fetchall()
            return dict(rows)

        return await asyncio.to_thread(run) if keys else {}

    async def _put_many(self, kind: str, rows: Iterable[tuple[str, str]]) -> None:
        model_id, now = self.inner.model_id, time.time()
        values = [(k, kind, model_id, v, now) for k, v in rows]

        def run() -> None:
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", values)
                self._db.commit()
                self._bytes += sum(len(v[3]) for v in values)
                if self.max_bytes is not None and self._bytes > self.max_bytes:
                    self._evict(self.max_bytes * 9 // 10)

        await asyncio.to_thread(run)
        log.debug("cache_stored", kind=kind, entries=len(values), model_id=model_id)

    def _stored_bytes(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(LENGTH(value)), 0) FROM entries").fetchone()[0])

    def _evict(self, target: int) -> None:
        """Delete the oldest entries until the stored values fit ``target`` bytes (caller holds the lock)."""
        self._bytes = self._stored_bytes()  # other processes may share the file: recount before deleting
        excess = self._bytes - target
        doomed: list[tuple[str]] = []
        for key, size in self._db.execute("SELECT key, LENGTH(value) FROM entries ORDER BY created ASC"):
            if excess <= 0:
                break
            doomed.append((key,))
            excess -= int(size)
        self._db.executemany("DELETE FROM entries WHERE key = ?", doomed)
        self._db.commit()
        self._bytes = self._stored_bytes()
        log.debug("cache_evicted", entries=len(doomed), bytes=self._bytes)


__all__ = ["CachedBackend", "default_cache_path", "is_deterministic"]
