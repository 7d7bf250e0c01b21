"""Limits inside a run (runtime/context.py): the memory ceiling, event-loop slices and hard timeouts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import sfdsl
from sfdsl import Budget, BudgetExceeded, ScriptedBackend

WIDE = '''
recipe wide(q: str, k: int = 4) -> answer {
  prompt p = "{{ q }}"
  v = vote k times by majority {
    said = generate p (max_tokens: 4)
    yield said
  }
  return v.answer
}'''


def test_a_run_past_its_memory_ceiling_stops_with_a_located_budget_error() -> None:
    recipe = sfdsl.compile(WIDE).recipe()
    backend = ScriptedBackend(lambda prompt, i: "y" * 1000)
    with pytest.raises(BudgetExceeded, match="memory ceiling of 20000 bytes") as caught:
        asyncio.run(recipe.arun({"q": "hi", "k": 500}, backend=backend, budget=Budget(max_memory_bytes=20_000)))
    assert caught.value.location and caught.value.location.startswith("<string>:")
    assert caught.value.partial["stopped"] == "memory"
    assert len(backend.requests) < 100  # stopped long before the 500 bodies ran


def test_sampling_is_refused_before_the_call_when_n_samples_cannot_fit() -> None:
    recipe = sfdsl.compile('''
recipe many(q: str, k: int = 2) -> answer {
  prompt p = "{{ q }}"
  xs = generate p (n: k, max_tokens: 64)
  return xs[0]
}''').recipe()
    backend = ScriptedBackend(lambda prompt, i: "ok")
    with pytest.raises(BudgetExceeded, match="memory ceiling"):
        asyncio.run(recipe.arun({"q": "hi", "k": 1_000_000}, backend=backend, budget=Budget(max_memory_bytes=1 << 20)))
    assert backend.requests == []


def test_nothing_is_sized_by_a_loop_count_up_front() -> None:
    recipe = sfdsl.compile('''
recipe votes(q: str, k: int = 3) -> answer {
  prompt p = "{{ q }}"
  v = vote k times by majority {
    said = generate p (max_tokens: 4)
    yield said
  }
  return v.answer
}''').recipe()
    with pytest.raises(BudgetExceeded, match="memory ceiling"):  # stops after a few bodies, not after 10**9 slots
        asyncio.run(recipe.arun({"q": "hi", "k": 10**9}, backend=ScriptedBackend(lambda p, i: "a"),
                                budget=Budget(max_memory_bytes=100_000)))


def test_many_steps_that_never_wait_still_let_the_loop_run_and_the_timeout_land() -> None:
    recipe = sfdsl.compile(WIDE).recipe()

    async def go() -> tuple[float, float]:
        worst, stop = 0.0, asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                worst, last = max(worst, now - last), now

        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        with pytest.raises(BudgetExceeded, match="wall-clock"):
            await recipe.arun({"q": "hi", "k": 200_000}, backend=ScriptedBackend(lambda p, i: "a"),
                              budget=Budget(timeout_s=0.5))
        elapsed = time.perf_counter() - started
        stop.set()
        await tick
        return elapsed, worst

    elapsed, worst = asyncio.run(go())
    assert elapsed < 2.5  # 0.5 s budget; benchmarks/redteam_serve.py measures the real margin
    assert worst < 1.0  # without the slices one iteration runs every body: seconds


def test_a_vote_over_more_bodies_than_stay_alive_stops_early_without_waiting_forever() -> None:
    recipe = sfdsl.compile('''
recipe early(q: str, k: int = 3) -> answer {
  prompt p = "{{ q }}"
  v = vote k times by majority (stop: "unbeatable") {
    said = generate p (max_tokens: 4)
    yield said
  }
  return v.answer
}''').recipe()

    async def go() -> Any:
        async with asyncio.timeout(30):
            return await recipe.arun({"q": "hi", "k": 5000}, backend=ScriptedBackend(lambda p, i: "same"))

    result = asyncio.run(go())
    assert result.answer == "same" and result.cost.calls < 5000
