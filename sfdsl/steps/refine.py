"""`refine EXPR as NAME (max: N) { ... score S  stop when C  next STEP }`: iterate an answer, keep last or best."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.scope import Scope, Symbol
from sfdsl.step_kind import ParamSpec, StepKind
from sfdsl.types import DICT, INT, REFINED, STR, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env


class Refine(ast.StepNode):
    kind: Literal["refine"] = "refine"
    initial: ast.Expr
    var: str
    args: list[ast.Arg] = Field(default_factory=list)
    body: ast.Block


PARAMS = {
    "max": ParamSpec(INT, "maximum number of rounds", required=True, bounds_loop=True),
    "keep": ParamSpec(STR, "which iterate the value is: the last, or the best by `score`", default="last",
                      one_of=("last", "best")),
}
#: Names every round of the body sees, besides the iterate.
BUILTINS = {"history": list_of(DICT), "round": INT}


def build(b: Any, c: list[Any], meta: Any) -> Refine:
    return Refine(span=b.span(meta), initial=c[0], var=str(c[1]), args=c[2] or [], body=c[3])


def check(ck: StepChecks, node: Refine, scope: Scope) -> Type:
    initial = ck.infer(node.initial, scope)
    ck.check_args(node.args, PARAMS, "refine", node, scope)
    body_scope = Scope(scope)
    ck.define(body_scope, node.var, initial, node.span, "loop")
    for name, type_ in BUILTINS.items():
        body_scope.names[name] = Symbol(type_, node.span, "builtin")
    loop = ck.loop_body("refine", node.body, body_scope, node, needs="next")
    if loop.nexts > 1:
        ck.error("SF402", "a refine body has exactly one `next`", node)
    _check_clause_order(ck, node.body)
    return REFINED


def _check_clause_order(ck: StepChecks, body: ast.Block) -> None:
    """SF321: a `score` after a statement that may stop the round is skipped in the round that stops, so the
    result is left unscored. It is an error when the score reads nothing made after the stop, i.e. when it
    could come first (a score of work the stopping round never does is left alone)."""
    stopper = None
    for i, stmt in enumerate(body.stmts):
        if stmt.stmt == "score" and stopper is not None:
            later = {s.target for s in body.stmts[body.stmts.index(stopper):i] if isinstance(s, ast.Assign)}
            if not _names(stmt.value) & later:
                ck.error("SF321", f"this `score` comes after a `stop when` (line {stopper.span.line}), so the "
                         "round that stops is left unscored", stmt, "put `score` before `stop when`")
        if stopper is None and _may_stop(stmt):
            stopper = stmt


def _names(node: Any) -> set[str]:
    """Every name an expression reads."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, ast.Name):
            found.add(item.id)
        elif isinstance(item, ast.Node):
            stack.extend(getattr(item, name) for name in type(item).model_fields if name != "span")
    return found


def _may_stop(stmt: Any) -> bool:
    """Whether a statement is a `stop when`, or an `if` with one in a branch."""
    if stmt.stmt == "stop":
        return True
    if stmt.stmt == "if":
        return any(_may_stop(s) for block in (stmt.then, stmt.orelse) if block is not None for s in block.stmts)
    return False


def bound(cm: CostModel, node: Refine, env: Env) -> tuple[Bound, Abstract]:
    rounds = cm.count(node, PARAMS, "max", env, "refine")
    inner = {**env, node.var: UNKNOWN}
    return cm.body(node, "body", inner).times(rounds, concurrent=False), UNKNOWN


KIND = StepKind(
    name="refine",
    doc="iterate an answer: each round may `stop`, must give the `next` iterate, and may `score` it",
    syntax="refine EXPR as NAME (max: N, params) { ... score S  stop when C  next STEP }",
    node=Refine,
    rule="refine",
    build=build,
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: f"as {node.var}",
    runtime="sfdsl.runtime.loop_steps:run_refine",
    bodies=lambda node: {"body": node.body},
    binds=lambda node: (node.var, *BUILTINS),
)
