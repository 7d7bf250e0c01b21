"""`vote N times by MODE (params) [using M] { ... yield X }`: run a body N times concurrently and vote."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.scope import Scope
from sfdsl.step_kind import StepKind
from sfdsl.steps.vote import MODES, SUPPLIED, check_mode, selection_bound
from sfdsl.types import INT, VOTE, Type, assignable

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env


class VoteTimes(ast.StepNode):
    """Vote over the yields of a body run ``count`` times concurrently."""

    kind: Literal["vote_times"] = "vote_times"
    count: ast.Expr
    mode: str
    args: list[ast.Arg] = Field(default_factory=list)
    using: str | None = None
    body: ast.Block


def build(b: Any, c: list[Any], meta: Any) -> VoteTimes:
    return VoteTimes(span=b.span(meta), count=c[0], mode=str(c[1]), args=c[2] or [], using=c[3], body=c[4])


def check(ck: StepChecks, node: VoteTimes, scope: Scope) -> Type:
    if not assignable(ck.infer(node.count, scope), INT):
        ck.error("SF306", "the number of votes must be an int", node.count)
    check_mode(ck, node, scope, "vote times")
    ck.loop_body("vote", node.body, Scope(scope), node, needs="yield")
    return VOTE


def bound(cm: CostModel, node: VoteTimes, env: Env) -> tuple[Bound, Abstract]:
    count = int(cm.static(node.count, env, "the number of votes"))
    body = cm.body(node, "body", env).times(count, concurrent=True)
    return body.then(selection_bound(cm, node, env)), UNKNOWN


KIND = StepKind(
    name="vote_times",
    doc="run a body N times concurrently and vote over its yields; unneeded runs are cancelled on early stop",
    syntax="vote N times by MODE (params) [using M] { ... yield X }",
    node=VoteTimes,
    rule="vote_times",
    build=build,
    modes=MODES,
    check=check,
    bound=bound,
    label=lambda node: f"by {node.mode}",
    runtime="sfdsl.runtime.loop_steps:run_vote_times",
    bodies=lambda node: {"body": node.body},
    supplies=SUPPLIED,
)
