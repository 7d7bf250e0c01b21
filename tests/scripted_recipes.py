"""Shared helpers for the scripted recipe tests (tests/test_recipes_*.py).

Each of those tests scripts the model so that a wrong control flow (wrong vote,
a loop that stops too early or too late, a search that keeps the wrong states)
changes the asserted result. Every run also checks that its cost stayed within
the recipe's static bound.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.runtime.backends.base import GenerateRequest, ScoreRequest
from sfdsl.runtime.results import RunResult

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
Q = "Kofi has 16 shells. They double their shells. How many shells does Kofi have now?"


def run(name: str, backend: ScriptedBackend, recipe: str | None = None, **inputs: Any) -> RunResult:
    """Run a library recipe on a scripted backend and check its cost against its static bound."""
    result = sfdsl.load(RECIPES / f"{name}.sf").recipe(recipe).run({"question": Q, **inputs}, backend=backend)
    assert result.bound is not None
    assert 0 < result.cost.calls <= result.bound["calls"]
    assert result.cost.completion_tokens <= result.bound["tokens"]
    return result


def generations(backend: ScriptedBackend) -> list[GenerateRequest]:
    return [r for r in backend.requests if isinstance(r, GenerateRequest)]


def scorings(backend: ScriptedBackend) -> list[ScoreRequest]:
    return [r for r in backend.requests if isinstance(r, ScoreRequest)]


def choice(p_first: float) -> Any:
    """A scores function making the first option (" (A)", " sure", ...) have probability ``p_first``."""

    def scores(prompt: str, continuation: str) -> float:
        return math.log(p_first) if continuation in (" (A)",) else math.log(1 - p_first)

    return scores


def assistant_prefill(prompt: str) -> str:
    """The text of the last assistant turn of a canonical chat prompt."""
    return prompt.rsplit("<assistant>", 1)[1] if "<assistant>" in prompt else ""
