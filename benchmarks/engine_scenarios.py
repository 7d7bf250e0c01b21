"""Engine scenarios for bench_batching.py: fairness beside a long prompt, and the prefix cache on self_refine."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import sfdsl
from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt
from sfdsl.runtime.backends.llama import LlamaBackend

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SMALL_TOPICS = ("apples", "the sea", "winter")


async def fairness(backend: LlamaBackend, *, long_tokens: int, max_tokens: int) -> tuple[float, float]:
    """Latency of three small requests alone and beside one long prompt (submitted first, then cancelled)."""
    smalls = [GenerateRequest(prompt=Prompt(messages=(Message(role="user", content=f"Tell me about {t}."),)),
                              max_tokens=max_tokens) for t in SMALL_TOPICS]
    sentence = "The history of the lighthouse keepers on the northern coast. "
    long_prompt = Prompt(text=sentence * max(1, long_tokens // 13))

    async def small_latency() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(backend.generate(r) for r in smalls))
        return time.perf_counter() - start

    await small_latency()  # warm-up
    alone = [await small_latency()]
    steps = backend.engine.steps
    big = asyncio.ensure_future(backend.generate(GenerateRequest(prompt=long_prompt, max_tokens=400)))
    while backend.engine.steps == steps and not big.done():
        await asyncio.sleep(0.01)
    together = await small_latency()
    big.cancel()
    await asyncio.gather(big, return_exceptions=True)
    alone.append(await small_latency())
    return statistics.mean(alone), together


async def prefix_cache(path: str, *, threads: int, rounds: int, max_tokens: int) -> dict[int, Any]:
    """self_refine run twice, by backends with and without the prefix cache: {slots: RunResult}."""
    recipe = sfdsl.load(RECIPES / "self_refine.sf").recipe("self_refine")
    # A question on which the default model's feedback keeps saying "incorrect", so every round runs
    # (the benchmark prints the rounds that ran).
    question = (
        "Mia has 48 stickers. She gives a quarter of them to Leo and then buys 15 more. "
        "How many stickers does she have?"
    )
    inputs = {"question": question, "rounds": rounds, "feedback_tokens": max_tokens, "max_tokens": max_tokens}
    out = {}
    for slots in (16, 0):
        backend = LlamaBackend.from_params({"path": path, "n_threads": threads, "n_seq_max": 4, "prefix_cache": slots})
        try:
            out[slots] = await recipe.arun(inputs, backend=backend, seed=0)
        finally:
            await backend.aclose()
    return out
