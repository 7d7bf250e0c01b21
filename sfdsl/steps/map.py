"""`map x in LIST [with (limit: N)] { ... yield X }`: run a body for each item, concurrently."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.diagnostics import Diagnostic
from sfdsl.scope import Scope
from sfdsl.step_kind import ParamSpec, StepKind
from sfdsl.types import ANY, INT, Type, elem, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env


class MapStep(ast.StepNode):
    kind: Literal["map"] = "map"
    var: str
    source: ast.Expr
    args: list[ast.Arg] = Field(default_factory=list)
    body: ast.Block


PARAMS = {"limit": ParamSpec(INT, "at most this many items (required when the list length is unknown)", low=0)}


def build(b: Any, c: list[Any], meta: Any) -> MapStep:
    return MapStep(span=b.span(meta), var=str(c[0]), source=c[1], args=c[2] or [], body=c[3])


def check(ck: StepChecks, node: MapStep, scope: Scope) -> Type:
    source = ck.infer(node.source, scope)
    if not source.is_list and source != ANY:
        ck.error("SF306", f"map needs a list, but got {source}", node.source)
    ck.check_args(node.args, PARAMS, "map", node, scope)
    body_scope = Scope(scope)
    ck.define(body_scope, node.var, elem(source), node.span, "loop")
    loop = ck.loop_body("map", node.body, body_scope, node, needs="yield")
    return list_of(loop.yields[0] if loop.yields else ANY)


def bound(cm: CostModel, node: MapStep, env: Env) -> tuple[Bound, Abstract]:
    length = cm.length(node.source, env)
    limit = next((a for a in node.args if a.name == "limit"), None)
    if limit is not None:
        cap = int(cm.static(limit.value, env, "`limit:` of map"))
        _warn_cut(cm, limit, length, cap)
        length = cap if length is None else min(length, cap)
    if length is None:
        length = cm.unbounded(node, "map", "add a static cap: map x in xs with (limit: 5) { ... }")
    inner = {**env, node.var: UNKNOWN}
    return cm.body(node, "body", inner).times(length, concurrent=True), Abstract(length=length)


def _warn_cut(cm: CostModel, limit: ast.Arg, length: int | None, cap: int) -> None:
    """SF910: a `limit:` that cuts the list, or may (the run then records how many items it dropped)."""
    hint = "the run logs how many items it dropped (event map_truncated); raise `limit:` if every item matters"
    if length is None:
        message = f"map runs at most {cap} items; a longer list is cut without an error"
    elif length > cap:
        message = f"map drops {length - cap} of the {length} items: `limit:` is {cap}"
    else:
        return
    cm.warn(Diagnostic(code="SF910", message=message, span=limit.span, hint=hint))


KIND = StepKind(
    name="map",
    doc="run a body for each item of a list, concurrently; the value is the list of its yields",
    syntax="map NAME in LIST [with (limit: N)] { ... yield X }",
    node=MapStep,
    rule="map_step",
    build=build,
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: node.var,
    runtime="sfdsl.runtime.loop_steps:run_map",
    bodies=lambda node: {"body": node.body},
    binds=lambda node: (node.var,),
)
