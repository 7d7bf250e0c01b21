"""Static worst-case cost bounds: model calls, generated tokens and sequences decoded at once.

The bound is computed before any model call, from the recipe's plan and its input
values; each step kind declares its own bound (sfdsl/steps/). A loop whose bound
depends on a model output is a compile error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from sfdsl import ast
from sfdsl.bounds import UNKNOWN, Abstract, Bound, BoundError, known
from sfdsl.diagnostics import Diagnostic
from sfdsl.expressions import ExprError, NotStatic, evaluate
from sfdsl.plan import Plan, plan_recipe
from sfdsl.program import ParsedProgram, recipe_key
from sfdsl.registry import kind_of
from sfdsl.step_kind import SAMPLING, Spec

__all__ = ["Bound", "BoundError", "CostModel", "Env", "bound_with_errors", "recipe_bound"]

Env = dict[str, Abstract]
#: Largest plan block (nodes plus edges) whose maximum antichain is computed exactly; past it, the sum of weights.
MAX_EXACT_PLAN = 200_000
Plans = Mapping[str, Plan]


def recipe_bound(program: ParsedProgram, file: str, recipe: ast.RecipeDecl, inputs: dict[str, Any] | None = None,
                 plans: Plans | None = None) -> Bound:
    """The worst-case cost of one run of ``recipe`` with ``inputs`` (defaults fill the rest).

    Args:
        plans: the compiled plans by recipe key; a recipe without one is planned here.

    Raises:
        BoundError: for the first loop bound that is not known before the run.
    """
    bound, problems = bound_with_errors(program, file, recipe, inputs, plans)
    errors = [d for d in problems if d.is_error]
    if errors:
        raise BoundError(errors[0])
    return bound


def bound_with_errors(program: ParsedProgram, file: str, recipe: ast.RecipeDecl, inputs: dict[str, Any] | None = None,
                      plans: Plans | None = None) -> tuple[Bound, list[Diagnostic]]:
    """The worst-case cost and every bound problem, errors (loops bounded only at run time) and warnings (a
    `limit:` that may cut a list), in one pass; the bound is meaningless when there are errors."""
    given = {name: known(value) for name, value in (inputs or {}).items()}
    model = CostModel(program, file, recipe, plans or {})
    return model.recipe_cost(given), model.errors


def _no_names(name: str) -> Any:
    raise NotStatic(name)


def _static_lookup(env: Env, name: str) -> Any:
    a = env.get(name, UNKNOWN)
    if not a.known:
        raise NotStatic(name)
    return a.value


class CostModel:
    """Walks a recipe's plan with abstract values; step kinds' ``bound`` functions call its helpers."""

    def __init__(self, program: ParsedProgram, file: str, recipe: ast.RecipeDecl, plans: Plans,
                 errors: list[Diagnostic] | None = None) -> None:
        self.program, self.file, self.recipe, self.plans = program, file, recipe, plans
        self.plan = plans.get(recipe_key(program, file, recipe.name)) or plan_recipe(recipe)
        self.prompts, self.models = self.plan.prompts, self.plan.models
        self.last_yield = UNKNOWN
        self.errors: list[Diagnostic] = [] if errors is None else errors  # and warnings (``warn``)
        self._bodies: dict[int, dict[str, Plan]] = {}

    def recipe_cost(self, given: Env) -> Bound:
        """The bound of the whole recipe; inputs not in ``given`` take their defaults or stay unknown."""
        env: Env = {}
        for param in self.recipe.params:
            if param.name in given:
                env[param.name] = given[param.name]
            elif param.default is not None:
                env[param.name] = known(evaluate(param.default, _no_names))
            else:
                env[param.name] = UNKNOWN
        return self.block(self.plan, env)

    # ------------------------------------------------------------ helpers for step kinds

    def static(self, expr: Any, env: Env, what: str) -> Any:
        """An expression's value before the run; a problem is recorded (and 1 returned) when it has none."""
        try:
            return evaluate(expr, lambda name: _static_lookup(env, name))
        except NotStatic as exc:
            return self.fail(Diagnostic(
                code="SF412",
                message=f"{what} must be known before the run, but '{exc}' is only known at run time",
                span=expr.span,
                hint="use a literal or a recipe input",
            ))
        except ExprError as exc:
            return self.fail(Diagnostic(code="SF413", message=f"{what}: {exc}", span=expr.span))

    def try_static(self, expr: Any, env: Env) -> Abstract:
        """What is known of an expression before the run, without reporting anything."""
        try:
            return known(evaluate(expr, lambda name: _static_lookup(env, name)))
        except (NotStatic, ExprError):
            return Abstract(length=self.length(expr, env))

    def fail(self, diagnostic: Diagnostic) -> int:
        """Record a bound problem and go on with a bound of 1, so every problem is reported."""
        self.errors.append(diagnostic)
        return 1

    def warn(self, diagnostic: Diagnostic) -> None:
        """Record a warning (``severity="warning"``): the bound stands, but the run may not do what it reads."""
        self.errors.append(diagnostic.model_copy(update={"severity": "warning"}))

    def unbounded(self, node: Any, what: str, hint: str) -> int:
        """Record SF411: ``what`` loops over a list whose length is unknown before the run (bound 1 from here)."""
        return self.fail(Diagnostic(code="SF411", message=f"unbounded loop: {what} over a list whose length is "
                                    "unknown before the run", span=node.span, hint=hint))

    def param(self, node: Any, spec: Spec, name: str, env: Env, where: str) -> Any:
        """A step parameter's static value, else its default from the spec."""
        for a in node.args:
            if a.name == name:
                return self.static(a.value, env, f"`{name}:` of {where}")
        return spec[name].default if name in spec else None

    def count(self, node: Any, spec: Spec, name: str, env: Env, where: str, fallback: int = 1) -> int:
        """A non-negative count parameter (n, max, depth...); ``fallback`` when it has no usable value."""
        value = self.param(node, spec, name, env, where)
        try:
            return max(0, int(value))
        except (TypeError, ValueError):
            return fallback

    def max_tokens(self, node: Any, env: Env, spec: Spec = SAMPLING) -> int:
        """Tokens a generating step may produce: its `max_tokens:`, the model's, else the spec's default."""
        for a in node.args:
            if a.name == "max_tokens":
                return int(self.static(a.value, env, "`max_tokens:`"))
        using = getattr(node, "using", None)
        decl = self.models.get(using) if using else next(iter(self.models.values()), None)
        if decl is not None:
            for a in decl.args:
                if a.name == "max_tokens":
                    return int(self.static(a.value, {}, "`max_tokens:` of the model"))
        return int(spec["max_tokens"].default)

    def length(self, expr: Any, env: Env) -> int | None:
        """The length of a list expression when known before the run."""
        if isinstance(expr, ast.ListExpr):
            return len(expr.items)
        if isinstance(expr, ast.Name):
            return env.get(expr.id, UNKNOWN).length
        if isinstance(expr, ast.Attr):
            return self.length(expr.value, env)
        return None

    def body(self, node: Any, name: str, env: Env) -> Bound:
        """The bound of one of a step's bodies, read from the recipe's plan."""
        return self.block(self._bodies[id(node)][name], dict(env))

    def callee(self, file: str, recipe: ast.RecipeDecl, inputs: Mapping[str, Abstract]) -> Bound:
        """The bound of a called recipe with what is known of its inputs."""
        model = CostModel(self.program, file, recipe, self.plans, self.errors)
        return model.recipe_cost({name: value for name, value in inputs.items() if value.known})

    # ------------------------------------------------------------ blocks and statements

    def block(self, plan: Plan, env: Env) -> Bound:
        env = dict(env)
        costs: dict[str, Bound] = {}
        for node_id in plan.order:
            data = plan.node(node_id)
            stmt = data["stmt"]
            self._bodies[id(stmt.value if ast.is_step(getattr(stmt, "value", None)) else stmt)] = data["bodies"]
            costs[node_id] = self.stmt(stmt, env)
        calls = sum(c.calls for c in costs.values())
        tokens = sum(c.tokens for c in costs.values())
        parallel, exact = _max_parallel(plan.graph, costs)
        return Bound(calls, tokens, parallel, exact)

    def stmt(self, stmt: Any, env: Env) -> Bound:
        kind = stmt.stmt
        if kind == "if":
            then = self.body(stmt, "then", env)
            other = self.body(stmt, "else", env) if stmt.orelse else Bound()
            for name in set(_assigned(stmt.then)) & set(_assigned(stmt.orelse)):
                env[name] = UNKNOWN
            return then.either(other)
        if kind in ("assign", "return", "next", "yield") and stmt.value is not None:
            bound, abstract = self.rhs(stmt.value, env)
            if kind == "assign":
                env[stmt.target] = abstract
            if kind == "yield":
                self.last_yield = abstract
            return bound
        return Bound()

    def rhs(self, node: Any, env: Env) -> tuple[Bound, Abstract]:
        if not ast.is_step(node):
            return Bound(), self.try_static(node, env)
        return kind_of(node).bound(self, node, env)  # type: ignore[misc, no-any-return]


def _assigned(block: ast.Block | None) -> list[str]:
    return [s.target for s in block.stmts if isinstance(s, ast.Assign)] if block else []


def _max_parallel(graph: nx.DiGraph, costs: dict[str, Bound]) -> tuple[int, bool]:
    """Largest total parallelism over statements that may run at the same time, and whether it is exact.

    That is a maximum-weight antichain of the plan DAG, the sum of the answers of its weakly connected parts
    (a statement alone in its part adds its own weight). Within a part, by Dilworth's theorem in its weighted
    form, it equals the minimum flow that passes through every node at least its weight times: see
    ``_antichain``. A plan past ``MAX_EXACT_PLAN`` gets the sum of all weights: a sound, not tight, bound.
    """
    weights = {n: costs[n].parallel for n in graph.nodes}
    exact = all(costs[n].parallel_exact for n in graph.nodes)
    if graph.number_of_edges() == 0:
        return sum(weights.values()), exact
    if graph.number_of_nodes() + graph.number_of_edges() > MAX_EXACT_PLAN:
        return sum(weights.values()), False
    total = 0
    for part in nx.weakly_connected_components(graph):
        positive = [weights[n] for n in part if weights[n] > 0]
        total += positive[0] if len(positive) == 1 else _antichain(graph.subgraph(part), weights) if positive else 0
    return total, exact


def _antichain(graph: nx.DiGraph, weights: dict[str, int]) -> int:
    """The maximum-weight antichain of a DAG as a minimum flow, in one max-flow computation without recursion.

    Start from the flow that sends each node's weight straight from the source through the node to the sink
    (the sum of all weights); the minimum flow is that sum less the largest flow that can be pushed back from
    the sink to the source through the residual network: into a node's exit by its weight, along the plan's
    edges (unbounded), and out of a node's entry by its weight.
    """
    back = nx.DiGraph()
    source, sink = ("sink",), ("source",)  # tuples never clash with node ids, which are strings
    for n in graph.nodes:
        w = weights[n]
        if w > 0:
            back.add_edge(source, ("out", n), capacity=w)
            back.add_edge(("in", n), sink, capacity=w)
        back.add_edge(("in", n), ("out", n))  # no capacity: unbounded
    for a, b in graph.edges:
        back.add_edge(("out", a), ("in", b))
    returned = nx.maximum_flow_value(back, source, sink)
    return int(sum(weights[n] for n in graph.nodes) - returned)
