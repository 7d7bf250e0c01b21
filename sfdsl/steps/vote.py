"""`vote EXPR by MODE (params) [using M]`: pick one answer from a list by majority, weights or a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.step_kind import SAMPLING, ParamSpec, StepKind
from sfdsl.types import ANY, FLOAT, INT, PROMPT, STR, VOTE, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Vote(ast.StepNode):
    kind: Literal["vote"] = "vote"
    source: ast.Expr
    mode: str
    args: list[ast.Arg] = Field(default_factory=list)
    using: str | None = None


#: Template variables the step supplies to its `prompt:`: the answers voted on.
SUPPLIED = ("responses",)
MODES = {
    "majority": {
        "stop": ParamSpec(STR, "'unbeatable': stop once the leader cannot be overtaken", one_of=("unbeatable",)),
        "margin": ParamSpec(FLOAT, "stop once the leader's share margin exceeds this"),
    },
    "weighted": {
        "weights": ParamSpec(list_of(FLOAT), "one weight per vote (for `vote N times`, use `score`)"),
        "stop": ParamSpec(STR, "'unbeatable' early stop", one_of=("unbeatable",)),
        "margin": ParamSpec(FLOAT, "early-stop margin"),
    },
    "llm": {
        **SAMPLING,
        "temperature": ParamSpec(FLOAT, "sampling temperature of the selection", default=0.0, low=0),
        "max_tokens": ParamSpec(INT, "tokens of the selection at most (default: the model's, else 64)",
                                default=64, low=1),
        "prompt": ParamSpec(PROMPT, "selection prompt; default: Universal Self-Consistency's"),
    },
}


def build(b: Any, c: list[Any], meta: Any) -> Vote:
    return Vote(span=b.span(meta), source=c[0], mode=str(c[1]), args=c[2] or [], using=c[3])


def check_mode(ck: StepChecks, node: Any, scope: Scope, where: str) -> None:
    """Checks shared by `vote` and `vote N times`: the mode, its parameters, the prompt and the model."""
    spec = ck.known_mode(KIND, node, code="SF213", what="vote mode")
    if spec is None:
        return
    args = ck.check_args(node.args, spec, f"{where} by {node.mode}", node, scope)
    if "prompt" in args and isinstance(args["prompt"].value, ast.Name):
        ck.use_prompt(args["prompt"].value.id, node, scope, extra=set(SUPPLIED))
    if node.mode == "weighted" and where == "vote" and "weights" not in args:
        ck.error("SF307", "vote by weighted needs `weights:`", node)
    ck.use_model(node.using, node)


def check(ck: StepChecks, node: Vote, scope: Scope) -> Type:
    source = ck.infer(node.source, scope)
    if not source.is_list and source != ANY:
        ck.error("SF306", f"vote needs a list of answers, but got {source}", node.source,
                 "vote over `generate ... (n: N)` samples, or use `vote N times by ... { ... }`")
    check_mode(ck, node, scope, "vote")
    return VOTE


def selection_bound(cm: CostModel, node: Any, env: Env) -> Bound:
    """One model call choosing among the answers (mode `llm`), nothing otherwise."""
    if node.mode != "llm":
        return Bound()
    return Bound(1, cm.max_tokens(node, env, MODES["llm"]), 1)


def bound(cm: CostModel, node: Vote, env: Env) -> tuple[Bound, Abstract]:
    return selection_bound(cm, node, env), UNKNOWN


KIND = StepKind(
    name="vote",
    doc="pick one answer from a list: majority, weighted, or selected by a model (Universal Self-Consistency)",
    syntax="vote EXPR by MODE (params) [using M]",
    node=Vote,
    rule="vote",
    build=build,
    modes=MODES,
    check=check,
    bound=bound,
    label=lambda node: f"by {node.mode}",
    runtime="sfdsl.runtime.step_runs:run_vote",
    supplies=SUPPLIED,
)
