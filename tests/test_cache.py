"""The SQLite cache: deterministic calls are paid once, and samples never collapse."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from sfdsl.runtime.backends.base import ChoiceRequest, GenerateRequest, Prompt, ScoreRequest
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.cache import CachedBackend, default_cache_path

T = TypeVar("T")
PROMPT = Prompt(text="Name a colour.")


def scripted(model_id: str = "scripted") -> ScriptedBackend:
    counter = iter(range(10_000))
    backend = ScriptedBackend(
        lambda prompt, i: f"sample {i} call {next(counter)}", scores={" red": -1.0, " blue": -2.0}
    )
    backend.model_id = model_id
    return backend


def with_cache(inner: ScriptedBackend, path: Path, fn: Callable[[CachedBackend], Awaitable[T]]) -> T:
    async def main() -> T:
        cache = CachedBackend(inner, path=path)
        try:
            return await fn(cache)
        finally:
            await cache.aclose()

    return asyncio.run(main())


def generations(inner: ScriptedBackend) -> int:
    return sum(1 for r in inner.requests if isinstance(r, GenerateRequest))


def test_repeated_run_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    request = GenerateRequest(prompt=PROMPT, n=2, seed=1, temperature=0.9)
    first_inner, second_inner = scripted(), scripted()
    first = with_cache(first_inner, path, lambda c: c.generate(request))
    second = with_cache(second_inner, path, lambda c: c.generate(request))  # a new process, same file
    assert generations(first_inner) == 1 and generations(second_inner) == 0
    assert [c.text for c in second] == [c.text for c in first]
    assert [c.cached for c in first] == [False, False] and [c.cached for c in second] == [True, True]


def test_sample_index_never_collapses(tmp_path: Path) -> None:
    request = GenerateRequest(prompt=PROMPT, n=3, seed=42, temperature=0.9)

    async def run(cache: CachedBackend) -> tuple[list[str], list[str], list[str], int]:
        fresh = [c.text for c in await cache.generate(request)]
        again = [c.text for c in await cache.generate(request)]
        fewer = [c.text for c in await cache.generate(request.model_copy(update={"n": 2}))]
        return fresh, again, fewer, await cache.count()

    inner = scripted()
    fresh, again, fewer, entries = with_cache(inner, tmp_path / "c.sqlite", run)
    assert fresh == ["sample 0 call 0", "sample 1 call 1", "sample 2 call 2"]
    assert again == fresh and fewer == fresh[:2] and entries == 3
    assert generations(inner) == 1


def test_partial_miss_regenerates_the_whole_request(tmp_path: Path) -> None:
    small = GenerateRequest(prompt=PROMPT, n=1, seed=5)
    large = small.model_copy(update={"n": 3})

    async def run(cache: CachedBackend) -> list[bool]:
        await cache.generate(small)
        return [c.cached for c in await cache.generate(large)]

    inner = scripted()
    assert with_cache(inner, tmp_path / "c.sqlite", run) == [False, False, False]
    assert [r.n for r in inner.requests] == [1, 3]  # type: ignore[union-attr]


def test_unseeded_sampling_is_not_cached(tmp_path: Path) -> None:
    hot = GenerateRequest(prompt=PROMPT, temperature=0.7)
    greedy = GenerateRequest(prompt=PROMPT, temperature=0.0)

    async def run(cache: CachedBackend) -> int:
        for request in (hot, hot, greedy, greedy):
            await cache.generate(request)
        return await cache.count()

    inner = scripted()
    assert with_cache(inner, tmp_path / "c.sqlite", run) == 1
    assert generations(inner) == 3  # hot twice, greedy once


def test_params_are_part_of_the_key(tmp_path: Path) -> None:
    base = GenerateRequest(prompt=PROMPT, seed=1)
    variants = [
        base,
        base.model_copy(update={"seed": 2}),
        base.model_copy(update={"max_tokens": 9}),
        base.model_copy(update={"stop": ("x",)}),
        GenerateRequest(prompt=Prompt(text="other"), seed=1),
    ]

    async def run(cache: CachedBackend) -> int:
        for request in variants:
            await cache.generate(request)
        return await cache.count()

    assert with_cache(scripted(), tmp_path / "c.sqlite", run) == len(variants)


def test_scores_are_cached_per_continuation(tmp_path: Path) -> None:
    async def run(cache: CachedBackend) -> list[list[bool]]:
        first = await cache.score(ScoreRequest(prompt=PROMPT, continuations=(" red",)))
        second = await cache.score(ScoreRequest(prompt=PROMPT, continuations=(" red", " blue")))
        third = await cache.score(ScoreRequest(prompt=PROMPT, continuations=(" blue", " red")))
        assert [s.logprob for s in third] == [-2.0, -1.0]
        return [[s.cached for s in batch] for batch in (first, second, third)]

    inner = scripted()
    assert with_cache(inner, tmp_path / "c.sqlite", run) == [[False], [True, False], [True, True]]
    assert [r.continuations for r in inner.requests] == [(" red",), (" blue",)]  # type: ignore[union-attr]


def test_choice_probs_are_cached(tmp_path: Path) -> None:
    request = ChoiceRequest(prompt=PROMPT, choices=(" red", " blue"))

    async def run(cache: CachedBackend) -> list[list[float]]:
        return [await cache.choice_probs(request), await cache.choice_probs(request)]

    inner = scripted()
    first, second = with_cache(inner, tmp_path / "c.sqlite", run)
    assert first == second and first[0] > first[1] and len(inner.requests) == 1


def test_model_ids_are_separate(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    request = GenerateRequest(prompt=PROMPT, seed=1)
    a, b = scripted("model-a"), scripted("model-b")
    with_cache(a, path, lambda c: c.generate(request))
    (out,) = with_cache(b, path, lambda c: c.generate(request))
    assert not out.cached and generations(b) == 1


def test_concurrent_use_is_safe(tmp_path: Path) -> None:
    async def run(cache: CachedBackend) -> int:
        requests = [GenerateRequest(prompt=Prompt(text=f"p{i % 5}"), seed=i % 3, n=2) for i in range(40)]
        await asyncio.gather(*(cache.generate(r) for r in requests))
        return await cache.count()

    assert with_cache(scripted(), tmp_path / "c.sqlite", run) == 5 * 3 * 2


def test_default_cache_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SFDSL_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_path() == tmp_path / ".cache" / "sfdsl" / "cache.sqlite"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "sfdsl" / "cache.sqlite"
    monkeypatch.setenv("SFDSL_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_path() == tmp_path / "mine" / "cache.sqlite"


def test_bounded_cache_evicts_the_oldest_entries(tmp_path: Path) -> None:
    inner = ScriptedBackend(lambda prompt, i: "x" * 2000)
    cache = CachedBackend(inner, path=tmp_path / "c.sqlite", max_bytes=20_000)

    async def go() -> tuple[int, list[GenerateRequest]]:
        for k in range(30):
            await cache.generate(GenerateRequest(prompt=Prompt(text=f"q{k}"), seed=1))
        calls_before = len(inner.requests)
        await cache.generate(GenerateRequest(prompt=Prompt(text="q29"), seed=1))  # newest: still cached
        await cache.generate(GenerateRequest(prompt=Prompt(text="q0"), seed=1))  # oldest: evicted, asked again
        count = await cache.count()
        await cache.aclose()
        return count, inner.requests[calls_before:]

    count, asked = asyncio.run(go())
    assert count <= 10 and [r.prompt.text for r in asked] == ["q0"]
    stored = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT SUM(LENGTH(value)) FROM entries").fetchone()[0]
    assert stored <= 20_000


def test_cache_bound_must_be_positive(tmp_path: Path) -> None:
    from sfdsl.errors import InputError

    with pytest.raises(InputError):
        CachedBackend(ScriptedBackend([]), path=tmp_path / "c.sqlite", max_bytes=0)
