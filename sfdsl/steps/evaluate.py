"""`evaluate MODE PROMPT (params) [using M]`: a model judges something; the value is a score in [0, 1]."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.step_kind import SAMPLING, ParamSpec, StepKind
from sfdsl.types import ANY, BOOL, INT, REGEX, SCORE, STR, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Evaluate(ast.StepNode):
    kind: Literal["evaluate"] = "evaluate"
    mode: str
    prompt: str
    args: list[ast.Arg] = Field(default_factory=list)
    using: str | None = None


MODES = {
    "choice": {
        "options": ParamSpec(list_of(STR), "the continuations compared, e.g. [' (A)', ' (B)']", required=True),
        "positive": ParamSpec(STR, "the option whose probability is the score (default: the first)"),
    },
    "rating": {
        "scale": ParamSpec(INT, "highest digit of the rating", default=9, low=1, high=9),
    },
    "likelihood": {
        "of": ParamSpec(ANY, "the continuation (or list of them) to score", required=True),
        "normalize": ParamSpec(BOOL, "length-normalise the log-likelihood", default=True),
    },
    "critique": {
        **SAMPLING,
        "pass": ParamSpec(REGEX, "the critique passes when it matches this", required=True),
        "fail": ParamSpec(REGEX, "the critique fails when it matches this (checked first)"),
    },
}


def build(b: Any, c: list[Any], meta: Any) -> Evaluate:
    return Evaluate(span=b.span(meta), mode=str(c[0]), prompt=str(c[1]), args=c[2] or [], using=c[3])


def check(ck: StepChecks, node: Evaluate, scope: Scope) -> Type:
    spec = ck.known_mode(KIND, node, code="SF212", what="evaluate mode")
    ck.use_prompt(node.prompt, node, scope)
    ck.use_model(node.using, node)
    if spec is None:
        for arg in node.args:
            ck.infer(arg.value, scope)
        return SCORE
    args = ck.check_args(node.args, spec, f"evaluate {node.mode}", node, scope)
    if node.mode == "likelihood" and "of" in args and ck.infer(args["of"].value, scope).is_list:
        return list_of(SCORE)
    return SCORE


def bound(cm: CostModel, node: Evaluate, env: Env) -> tuple[Bound, Abstract]:
    if node.mode == "critique":
        return Bound(1, cm.max_tokens(node, env), 1), UNKNOWN
    if node.mode == "choice":
        options = cm.param(node, MODES["choice"], "options", env, "evaluate choice") or []
        return Bound(1, 0, max(1, len(options))), UNKNOWN
    if node.mode == "likelihood":
        of = next((a.value for a in node.args if a.name == "of"), None)
        length = cm.length(of, env) if of is not None else None
        return Bound(1, 0, length or 1), Abstract(length=length)
    return Bound(1, 0, 1), UNKNOWN


KIND = StepKind(
    name="evaluate",
    doc="a model judges something: option probabilities, an expected rating, a likelihood or a critique",
    syntax="evaluate MODE PROMPT (params) [using M]",
    node=Evaluate,
    rule="evaluate",
    build=build,
    modes=MODES,
    check=check,
    bound=bound,
    label=lambda node: f"{node.mode} {node.prompt}",
    runtime="sfdsl.runtime.step_runs:run_evaluate",
)
