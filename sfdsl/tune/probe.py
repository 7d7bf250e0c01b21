"""Dry runs of a recipe on a stand-in model, so a searched value a step refuses is an error before a model runs.

A recipe's inputs carry no ranges of their own: a value is refused where it is used (``n: 0`` by the
generation step, a negative ``max_tokens``...). So ``tune`` runs each range end and each choice once, with the
first dev item's inputs, on a scripted backend that answers every generation "The answer is 0." and scores
every choice evenly; the step's own check then fails, located, before the real model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sfdsl.runtime.backends.scripted import ScriptedBackend

#: A configuration whose static bound exceeds these is not dry-run (its stand-in run alone would be costly).
MAX_PROBE_CALLS = 10_000
MAX_PROBE_PARALLEL = 1_024


def stand_in() -> ScriptedBackend:
    """The stand-in model: every generation "The answer is 0.", every continuation the same log-probability."""
    return ScriptedBackend(lambda prompt, index: "The answer is 0.", scores=lambda prompt, text: -0.7, record=False)


async def dry_run(recipe: Any, inputs: Mapping[str, Any]) -> None:
    """Run ``recipe`` once on the stand-in model.

    Raises:
        SfdslError: what the recipe raises (InputError, StepError...), located in its .sf file.
    """
    if recipe is None:
        return
    bound = recipe.bound(dict(inputs))
    if bound.calls > MAX_PROBE_CALLS or bound.parallel > MAX_PROBE_PARALLEL:
        return
    await recipe.arun(dict(inputs), backend=stand_in())
