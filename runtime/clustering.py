"""Clustering answers by meaning: exact (normalised equality), similarity (difflib ratio) or llm (implication).

Answers join the first cluster whose representative (its first member) they match, in order; a missing
answer joins no cluster. ``llm`` asks the model both ways, "does A imply B" and "does B imply A", against
every representative at once: one batch of choice evaluations per answer.
"""

from __future__ import annotations

import asyncio
import difflib
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from sfdsl import ast
from sfdsl.errors import StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.expressions import scalar
from sfdsl.runtime.backends.base import Prompt
from sfdsl.runtime.voting import vote_key
from sfdsl.step_kind import with_defaults
from sfdsl.steps.cluster import MODES, Cluster, Clusters
from sfdsl.templates import render
from sfdsl.values import NoAnswer

if TYPE_CHECKING:
    from sfdsl.plan import Plan
    from sfdsl.runtime.executor import Executor, Frame, RecipeState

#: The implication question asked when a `cluster by llm` names no prompt (after Kuhn et al. 2023).
IMPLIES_PROMPT = """Answer 1: {{ a }}
Answer 2: {{ b }}
Does Answer 1 mean the same as Answer 2, or imply it?
 (A) Yes
 (B) No
The correct choice is:"""

Implies = Callable[[Sequence[tuple[str, str]]], Awaitable[list[bool]]]


def _missing(value: Any) -> bool:
    v = scalar(value)
    return v is None or isinstance(v, NoAnswer) or (isinstance(v, str) and not v.strip())


def cluster_exact(values: Sequence[Any]) -> list[list[int]]:
    """Groups of equal answers after normalisation (numbers numerically, text case-folded)."""
    groups: dict[str, list[int]] = {}
    for i, value in enumerate(values):
        if not _missing(value):
            groups.setdefault(vote_key(value), []).append(i)
    return list(groups.values())


def cluster_similar(values: Sequence[Any], threshold: float) -> list[list[int]]:
    """Greedy groups: an answer joins the first group whose representative's difflib ratio is ≥ threshold."""
    groups: list[list[int]] = []
    texts = [" ".join(str(scalar(v)).strip().lower().split()) for v in values]
    for i, value in enumerate(values):
        if _missing(value):
            continue
        for group in groups:
            if difflib.SequenceMatcher(None, texts[group[0]], texts[i]).ratio() >= threshold:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


async def cluster_llm(values: Sequence[Any], implies: Implies) -> list[list[int]]:
    """Greedy groups: an answer joins the first group whose representative it implies and is implied by."""
    groups: list[list[int]] = []
    texts = [str(scalar(v)) for v in values]
    for i, value in enumerate(values):
        if _missing(value):
            continue
        pairs = [pair for group in groups for pair in ((texts[i], texts[group[0]]), (texts[group[0]], texts[i]))]
        verdicts = await implies(pairs) if pairs else []
        for k, group in enumerate(groups):
            if verdicts[2 * k] and verdicts[2 * k + 1]:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def summarise(values: Sequence[Any], groups: list[list[int]]) -> Clusters:
    """The `clusters` record of grouped answers; entropy in nats over the clustered answers.

    >>> summarise([4, 5, 4], [[0, 2], [1]]).entropy
    0.6365141682948128
    """
    ordered = sorted(groups, key=lambda g: (-len(g), g[0]))
    sizes = [len(g) for g in ordered]
    clustered = sum(sizes)
    entropy = -sum(s / clustered * math.log(s / clustered) for s in sizes) if clustered else 0.0
    return Clusters(
        groups=[list(g) for g in ordered],
        sizes=sizes,
        largest=values[ordered[0][0]] if ordered else NoAnswer("no answer to cluster"),
        share=sizes[0] / len(values) if ordered else 0.0,
        count=len(ordered),
        entropy=entropy + 0.0,
    )


async def run_cluster(ex: Executor, state: RecipeState, node: Cluster, frame: Frame, path: tuple[str, ...],
                      bodies: dict[str, Plan]) -> Clusters:
    values = eval_expr(node.source, frame.lookup)
    if not isinstance(values, list):
        raise StepError("cluster needs a list of answers", location=str(node.span))
    args = [a for a in node.args if a.name != "prompt"]
    opts = with_defaults(MODES[node.mode], state.caller.args(args, frame.lookup))
    if node.mode == "exact":
        return summarise(values, cluster_exact(values))
    if node.mode == "similarity":
        return summarise(values, cluster_similar(values, float(opts["threshold"])))
    backend, _ = await state.caller.backend(node.using, frame.lookup)
    options = [str(o) for o in opts["options"]]
    threshold = float(opts["threshold"])
    prompt_arg = next((a.value for a in node.args if a.name == "prompt"), None)
    what = "/".join(path)

    def question(a: str, b: str) -> Prompt:
        if isinstance(prompt_arg, ast.Name):
            return state.caller.prompt(prompt_arg.id, frame.lookup, extra={"a": a, "b": b})
        return Prompt(text=render(IMPLIES_PROMPT, {"a": a, "b": b}))

    async def one(a: str, b: str) -> bool:
        probs = await state.caller.choice_probs(backend, question(a, b), options, what)
        return probs[0] >= threshold

    async def implies(pairs: Sequence[tuple[str, str]]) -> list[bool]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(a, b)) for a, b in pairs]
        return [t.result() for t in tasks]

    return summarise(values, await cluster_llm(values, implies))
