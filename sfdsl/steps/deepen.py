"""`deepen PROMPT (budget:, max_total:, ...)`: iterative deepening, budget b, then γ·b after a trigger, to a cap."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.step_kind import SAMPLES, ParamSpec, StepKind
from sfdsl.types import FLOAT, INT, REGEX, STR, Type

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Deepen(ast.PromptStep):
    """Iterative-deepening generation: budget b, then γ·b after a trigger, up to a cap."""

    kind: Literal["deepen"] = "deepen"


PARAMS = {
    **SAMPLES,
    "budget": ParamSpec(INT, "first token budget b0", required=True, bounds_loop=True),
    "gamma": ParamSpec(FLOAT, "budget growth per round", default=2.0),
    "max_total": ParamSpec(INT, "cap on tokens generated per sample", required=True, bounds_loop=True),
    "trigger": ParamSpec(STR, "text appended before continuing an unfinished answer",
                         default="Wait, let me re-check."),
    "done": ParamSpec(REGEX, "an answer is finished when it matches this"),
}


def deepen_budgets(budget: int, gamma: float, cap: int) -> list[int]:
    """Token budgets of each iterative-deepening round: b, γb, γ²b … until the cap is spent.

    >>> deepen_budgets(64, 2.0, 256)
    [64, 128, 64]
    """
    budgets: list[int] = []
    spent, current = 0, max(1, budget)
    while spent < cap and len(budgets) < 64:
        step = min(math.ceil(current), cap - spent)
        budgets.append(step)
        spent += step
        current = math.ceil(current * max(gamma, 1.0))
    return budgets


def build(b: Any, c: list[Any], meta: Any) -> Deepen:
    return Deepen(span=b.span(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])


def check(ck: StepChecks, node: Deepen, scope: Scope) -> Type:
    return ck.sampled_text(node, PARAMS, "deepen", scope)


def bound(cm: CostModel, node: Deepen, env: Env) -> tuple[Bound, Abstract]:
    n = cm.count(node, PARAMS, "n", env, "deepen")
    budget = cm.count(node, PARAMS, "budget", env, "deepen", fallback=1)
    cap = cm.count(node, PARAMS, "max_total", env, "deepen", fallback=budget)
    gamma = float(cm.param(node, PARAMS, "gamma", env, "deepen"))
    rounds = len(deepen_budgets(budget, gamma, cap))
    return Bound(1 + (rounds - 1) * n, n * cap, n), Abstract(length=n if node.returns_list else None)


KIND = StepKind(
    name="deepen",
    doc="iterative deepening: a first token budget, grown by γ after a trigger while the answer is unfinished",
    syntax="deepen PROMPT (budget: B, max_total: T, params) [using M]",
    node=Deepen,
    rule="deepen",
    build=build,
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: node.prompt,
    runtime="sfdsl.runtime.step_runs:run_deepen",
)
