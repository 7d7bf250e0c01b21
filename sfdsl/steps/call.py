"""`call recipe(input: EXPR, ...)` / `call alias.recipe(...)`: run another recipe; the value is its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.diagnostics import with_suggestion
from sfdsl.step_kind import StepKind
from sfdsl.types import ANY, RESULT, Type, assignable, parse_type

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class CallRecipe(ast.StepNode):
    kind: Literal["call"] = "call"
    target: list[str]
    args: list[ast.Arg] = Field(default_factory=list)


def build(b: Any, c: list[Any], meta: Any) -> CallRecipe:
    return CallRecipe(span=b.span(meta), target=c[0], args=[a for a in c[1:] if a is not None])


def check(ck: StepChecks, node: CallRecipe, scope: Scope) -> Type:
    found = ck.program.resolve_call(ck.file, node.target)
    if found is None:
        ck.error("SF502", ck.program.unknown_recipe_message(ck.file, node.target), node)
        for arg in node.args:
            ck.infer(arg.value, scope)
        return RESULT
    file, callee = found
    ck.calls.add_edge(f"{ck.file}::{ck.recipe.name}", f"{file}::{callee.name}", span=node.span)
    params = {p.name: p for p in callee.params}
    given = set()
    for arg in node.args:
        got = ck.infer(arg.value, scope)
        given.add(arg.name)
        if arg.name not in params:
            msg = with_suggestion(f"recipe '{callee.name}' has no input '{arg.name}'", arg.name, params)
            ck.error("SF503", msg, arg)
        elif not assignable(got, parse_type(str(params[arg.name].type)) or ANY):
            ck.error("SF504", f"input '{arg.name}' of '{callee.name}' is {params[arg.name].type}, got {got}", arg)
    for name, p in params.items():
        if p.default is None and name not in given:
            ck.error("SF505", f"call of '{callee.name}' is missing input '{name}'", node)
    return RESULT


def bound(cm: CostModel, node: CallRecipe, env: Env) -> tuple[Bound, Abstract]:
    found = cm.program.resolve_call(cm.file, node.target)
    if found is None:
        return Bound(), UNKNOWN
    file, callee = found
    inputs = {a.name: cm.try_static(a.value, env) for a in node.args}
    return cm.callee(file, callee, inputs), UNKNOWN


KIND = StepKind(
    name="call",
    doc="run another recipe of this file or an imported one; the value is its result",
    syntax="call RECIPE(input: EXPR, ...) | call ALIAS.RECIPE(...)",
    node=CallRecipe,
    rule="call",
    build=build,
    params={},
    check=check,
    bound=bound,
    label=lambda node: ".".join(node.target),
    runtime="sfdsl.runtime.loop_steps:run_call",
)
