"""Durable, resumable SQLite store of per-item evaluation results, with one writer at a time."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sfdsl.errors import SfdslError

STORE_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_key TEXT NOT NULL,
    item_key TEXT NOT NULL,
    sample INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    recipe TEXT NOT NULL,
    inputs TEXT NOT NULL,
    gold TEXT NOT NULL,
    answer TEXT NOT NULL,
    outputs TEXT NOT NULL,
    correct INTEGER NOT NULL,
    answer_correct INTEGER NOT NULL,
    first_correct INTEGER,
    score REAL,
    abstained INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_calls INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    seed INTEGER NOT NULL,
    error TEXT,
    error_kind TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_key, item_key, sample)
);
"""

_JSON_FIELDS = ("inputs", "gold", "answer", "outputs")
_BOOL_FIELDS = ("correct", "answer_correct", "first_correct", "abstained")


class StoreError(SfdslError):
    """Raised when the results store cannot be opened or written."""


class StoreBusy(StoreError):
    """Raised when another process is writing the results store (it holds the store's lock file)."""


def lock_path(store: str | Path) -> Path:
    """The lock file next to a store: ``results.sqlite.lock``, holding the writer's pid."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


class WriterLock:
    """An exclusive ``flock`` on a store's lock file, for as long as the store is open.

    The kernel drops the lock when its holder exits, however it exits, so a lock left by a killed process is
    simply taken over. The file holds the holder's pid, for the error of the next writer.
    """

    def __init__(self, store: str | Path) -> None:
        """Take the lock.

        Raises:
            StoreBusy: naming the holder's pid, when another process holds it.
            StoreError: when the lock file (or its directory) cannot be created.
        """
        self.path = lock_path(store)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create output directory {self.path.parent}: {exc.strerror or exc}") from None
        try:
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(self._fd)
            os.close(self._fd)
            self._fd = None
            raise busy(Path(store), holder) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Drop the lock (closing the file drops it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def busy(store: Path, holder: str) -> StoreBusy:
    """The one-line error for a store another process writes."""
    return StoreBusy(f"results store {store} is in use by another writer (pid {holder}); "
                     "wait for it to finish, or pass another --out")


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        if text.isdigit():
            return text
    return "unknown"


@dataclass
class ItemRecord:
    """The recorded outcome of one (item, sample) of one run.

    ``correct`` counts abstentions and failures as wrong (it is what accuracy
    averages); ``answer_correct`` is whether the answer matches the gold
    regardless of abstention (used for risk-coverage and calibration);
    ``first_correct`` is the first-turn answer's correctness for two-turn
    recipes, else None.
    """

    run_key: str
    item_key: str
    sample: int
    item_id: str
    item_index: int
    recipe: str
    inputs: dict[str, Any]
    gold: Any
    answer: Any
    outputs: dict[str, Any]
    correct: bool
    answer_correct: bool
    first_correct: bool | None
    score: float | None
    abstained: bool
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached_calls: int
    wall_s: float
    seed: int
    error: str | None = None
    error_kind: str | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


_COLUMNS = [f.name for f in fields(ItemRecord)]


class ResultStore:
    """Append-only SQLite results store (WAL, ``synchronous=FULL``).

    Each :meth:`add` is its own committed transaction, so a record that was
    added survives a crash or ``kill -9``; the primary key
    ``(run_key, item_key, sample)`` makes re-adding a no-op, so a resumed run
    never duplicates an item. Safe to call from several threads. One process
    writes a store at a time: opening a store another process has open raises
    :class:`StoreBusy` naming its pid (see :class:`WriterLock`).
    """

    def __init__(self, path: str | Path, *, lock: bool = True) -> None:
        """Open (creating if needed) the store at ``path``.

        Args:
            lock: take the store's writer lock; False when the caller already holds it (a :class:`WriterLock`).

        Raises:
            StoreBusy: If another process has the store open.
            StoreError: If the database cannot be opened.
        """
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc
        self._writer = WriterLock(self.path) if lock else None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if self._writer is not None:
                self._writer.release()
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc

    @classmethod
    def in_dir(cls, out_dir: str | Path, *, lock: bool = True) -> ResultStore:
        """Open the store file inside an output directory."""
        return cls(Path(out_dir) / STORE_NAME, lock=lock)

    def register_run(self, run_key: str, label: str, meta: dict[str, Any]) -> None:
        """Record what a run key stands for (recipe, models, inputs...)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?)",
                (run_key, label, json.dumps(meta, sort_keys=True, default=str), time.time()),
            )

    def add(self, record: ItemRecord) -> bool:
        """Durably append one record.

        Returns:
            True if it was new, False if that (run, item, sample) was already stored.

        Raises:
            StoreError: If the write fails.
        """
        row = asdict(record)
        for name in _JSON_FIELDS:
            row[name] = json.dumps(row[name], sort_keys=True, default=str, ensure_ascii=False)
        for name in _BOOL_FIELDS:
            row[name] = None if row[name] is None else int(bool(row[name]))
        sql = f"INSERT OR IGNORE INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        try:
            with self._lock:
                cur = self._db.execute(sql, [row[c] for c in _COLUMNS])
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write to results store {self.path}: {exc}") from exc
        return cur.rowcount == 1

    def done(self, run_key: str) -> set[tuple[str, int]]:
        """The ``(item_key, sample)`` pairs already recorded for a run."""
        with self._lock:
            cur = self._db.execute("SELECT item_key, sample FROM results WHERE run_key = ?", (run_key,))
            return {(k, s) for k, s in cur.fetchall()}

    def drop_errors(self, run_key: str) -> int:
        """Delete a run's failed records so they are retried; returns how many."""
        with self._lock:
            cur = self._db.execute("DELETE FROM results WHERE run_key = ? AND error IS NOT NULL", (run_key,))
            return cur.rowcount

    def records(self, run_key: str, keys: Iterable[tuple[str, int]] | None = None) -> list[ItemRecord]:
        """A run's records in dataset order, optionally only the given ``(item_key, sample)`` pairs."""
        with self._lock:
            cur = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM results WHERE run_key = ? ORDER BY item_index, sample",
                (run_key,),
            )
            raw = cur.fetchall()
        wanted = set(keys) if keys is not None else None
        out: list[ItemRecord] = []
        for values in raw:
            row = dict(zip(_COLUMNS, values, strict=False))
            if wanted is not None and (row["item_key"], row["sample"]) not in wanted:
                continue
            for name in _JSON_FIELDS:
                row[name] = json.loads(row[name])
            for name in _BOOL_FIELDS:
                row[name] = None if row[name] is None else bool(row[name])
            out.append(ItemRecord(**row))
        return out

    def close(self) -> None:
        """Close the database and let another process write it."""
        with self._lock:
            self._db.close()
            if self._writer is not None:
                self._writer.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
