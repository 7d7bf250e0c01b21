"""`search beam|mcts from ROOT with (...) { expand { yield STEPS } value { yield NUMBER } }`: tree search."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound
from sfdsl.diagnostics import with_suggestion
from sfdsl.scope import Scope, Symbol
from sfdsl.step_kind import ParamSpec, StepKind
from sfdsl.types import ANY, FLOAT, INT, REGEX, SEARCH, STR, Type

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env


class SearchPart(ast.Node):
    name: str
    body: ast.Block


class Search(ast.StepNode):
    kind: Literal["search"] = "search"
    strategy: str
    root: ast.Expr
    args: list[ast.Arg] = Field(default_factory=list)
    parts: list[SearchPart]


JOIN = ParamSpec(STR, "text placed between a state and its next step", default="\n")
DONE = ParamSpec(REGEX, "a state matching this is final")
STRATEGIES = {
    "beam": {
        "depth": ParamSpec(INT, "maximum depth", required=True, bounds_loop=True, low=1),
        "beam": ParamSpec(INT, "states kept per level", required=True, bounds_loop=True, low=1),
        "join": JOIN,
        "done": DONE,
    },
    "mcts": {
        "simulations": ParamSpec(INT, "number of simulations", required=True, bounds_loop=True, low=1),
        "depth": ParamSpec(INT, "maximum depth", required=True, bounds_loop=True, low=1),
        "c": ParamSpec(FLOAT, "UCB exploration constant", default=1.0, low=0),
        "width": ParamSpec(INT, "children a node gets before selection descends past it", default=2, low=1),
        "join": JOIN,
        "done": DONE,
    },
}
PARTS = ("expand", "value")
#: Names every part's body sees.
BUILTINS = {"state": STR, "depth": INT}


def build(b: Any, c: list[Any], meta: Any) -> Search:
    strategy, root, args, *parts = c
    return Search(span=b.span(meta), strategy=str(strategy), root=root, args=args or [], parts=parts)


def build_part(b: Any, c: list[Any], meta: Any) -> SearchPart:
    return SearchPart(span=b.span(c[0]), name=str(c[0]), body=c[1])


def check(ck: StepChecks, node: Search, scope: Scope) -> Type:
    spec = ck.known_mode(KIND, node, code="SF214", what="search strategy", plural="strategies")
    ck.infer(node.root, scope)
    if spec is not None:
        ck.check_args(node.args, spec, f"search {node.strategy}", node, scope)
    names = [p.name for p in node.parts]
    for part in node.parts:
        if part.name not in PARTS:
            ck.error("SF405", with_suggestion(f"unknown search part '{part.name}'", part.name, PARTS), part)
            continue
        body_scope = Scope(scope)
        for name, type_ in BUILTINS.items():
            body_scope.names[name] = Symbol(type_, part.span, "builtin")
        loop = ck.loop_body("search", part.body, body_scope, part, needs="yield")
        if part.name == "expand" and loop.yields and not loop.yields[0].is_list and loop.yields[0] != ANY:
            ck.error("SF306", "expand must yield a list of next steps, e.g. generate ... (n: 3)", part)
    for required in PARTS:
        if required not in names:
            ck.error("SF404", f"search needs an `{required} {{ ... }}` part", node)
    return SEARCH


def bound(cm: CostModel, node: Search, env: Env) -> tuple[Bound, Abstract]:
    spec = STRATEGIES.get(node.strategy, STRATEGIES["beam"])
    inner = {**env, "state": UNKNOWN, "depth": UNKNOWN}
    names = {p.name for p in node.parts}
    expand = cm.body(node, "expand", inner) if "expand" in names else Bound()
    k = cm.last_yield.length or 1
    value = cm.body(node, "value", dict(inner)) if "value" in names else Bound()
    per_state = expand.then(value.times(k, concurrent=True))
    depth = cm.count(node, spec, "depth", env, "search")
    if node.strategy == "mcts":
        sims = cm.count(node, spec, "simulations", env, "search")
        return per_state.times(sims, concurrent=False), UNKNOWN
    beam = cm.count(node, spec, "beam", env, "search")
    return beam_bound(per_state, depth, beam, k), UNKNOWN


def beam_bound(per_state: Bound, depth: int, beam: int, k: int) -> Bound:
    """The bound of ``depth`` levels, each expanding and valuing the states kept by the last (at most ``beam``).

    The states per level grow by ``k`` until ``beam`` caps them, so after at most log_k(beam) levels every level
    costs the same: those are counted at once, and a huge ``depth`` costs no more time than a small one.
    """
    total, states, level = Bound(), 1, 0
    while level < depth:
        following = min(beam, states * k)
        if following == states:  # every remaining level costs the same
            return total.then(per_state.times(states, concurrent=True).times(depth - level, concurrent=False))
        total = total.then(per_state.times(states, concurrent=True))
        states, level = following, level + 1
    return total


KIND = StepKind(
    name="search",
    doc="tree search over text states: `expand` yields next steps, `value` yields a state's value",
    syntax="search STRATEGY from ROOT with (params) { expand { ... yield STEPS } value { ... yield NUMBER } }",
    node=Search,
    rule="search",
    build=build,
    modes=STRATEGIES,
    mode_field="strategy",
    check=check,
    bound=bound,
    label=lambda node: node.strategy,
    runtime="sfdsl.runtime.loop_steps:run_search",
    bodies=lambda node: {part.name: part.body for part in node.parts},
    binds=lambda node: tuple(BUILTINS),
    rules={"search_part": build_part},
)
