"""Static worst-case cost bounds: model calls, generated tokens and sequences decoded at once.

The bound is computed before any model call, from the recipe and its input
values. A loop whose bound depends on a model output is a compile error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import networkx as nx

from sfdsl import ast, steps
from sfdsl.diagnostics import Diagnostic
from sfdsl.expressions import ExprError, NotStatic, evaluate
from sfdsl.plan import build_plan, collect_models, collect_prompts
from sfdsl.program import Program


@dataclass(frozen=True)
class Bound:
    """Worst case of a recipe or step."""

    calls: int = 0
    tokens: int = 0
    parallel: int = 0

    def then(self, other: Bound) -> Bound:
        return Bound(self.calls + other.calls, self.tokens + other.tokens, max(self.parallel, other.parallel))

    def times(self, k: int, *, concurrent: bool) -> Bound:
        return Bound(self.calls * k, self.tokens * k, self.parallel * k if concurrent else self.parallel)

    def either(self, other: Bound) -> Bound:
        return Bound(max(self.calls, other.calls), max(self.tokens, other.tokens), max(self.parallel, other.parallel))

    def __str__(self) -> str:
        return f"≤ {self.calls} model calls, ≤ {self.tokens} generated tokens, ≤ {self.parallel} sequences at once"


class BoundError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


@dataclass
class Abstract:
    """What is statically known of a value: itself, or at least the length of a list."""

    value: Any = None
    known: bool = False
    length: int | None = None


UNKNOWN = Abstract()


def recipe_bound(program: Program, file: str, recipe: ast.Recipe, inputs: dict[str, Any] | None = None) -> Bound:
    """The worst-case cost of one run of ``recipe`` with ``inputs`` (defaults fill the rest).

    Raises:
        BoundError: for the first loop bound that is not known before the run.
    """
    errors = bound_errors(program, file, recipe, inputs)
    if errors:
        raise BoundError(errors[0])
    return _bound(program, file, recipe, inputs)[0]


def bound_errors(program: Program, file: str, recipe: ast.Recipe,
                 inputs: dict[str, Any] | None = None) -> list[Diagnostic]:
    """Every bound problem of a recipe (loops bounded only at run time), without stopping at the first."""
    return _bound(program, file, recipe, inputs)[1]


def _bound(program: Program, file: str, recipe: ast.Recipe,
           inputs: dict[str, Any] | None) -> tuple[Bound, list[Diagnostic]]:
    env: dict[str, Abstract] = {}
    inputs = inputs or {}
    for param in recipe.params:
        if param.name in inputs:
            env[param.name] = _known(inputs[param.name])
        elif param.default is not None:
            env[param.name] = _known(evaluate(param.default, lambda n: (_ for _ in ()).throw(NotStatic(n))))
        else:
            env[param.name] = UNKNOWN
    model = _CostModel(program, file, recipe)
    bound = model.block(recipe.body, env)
    return bound, model.errors


def _known(value: Any) -> Abstract:
    return Abstract(value=value, known=True, length=len(value) if isinstance(value, (list, tuple)) else None)


class _CostModel:
    def __init__(self, program: Program, file: str, recipe: ast.Recipe) -> None:
        self.program, self.file, self.recipe = program, file, recipe
        self.prompts = collect_prompts(recipe.body)
        self.models = collect_models(recipe.body)
        self.last_yield = UNKNOWN
        self.errors: list[Diagnostic] = []

    # ------------------------------------------------------------ helpers

    def static(self, expr: Any, env: dict[str, Abstract], what: str) -> Any:
        def lookup(name: str) -> Any:
            a = env.get(name, UNKNOWN)
            if not a.known:
                raise NotStatic(name)
            return a.value

        try:
            return evaluate(expr, lookup)
        except NotStatic as exc:
            return self.fail(Diagnostic(
                code="SF412",
                message=f"{what} must be known before the run, but '{exc}' is only known at run time",
                span=expr.span,
                hint="use a literal or a recipe input",
            ))
        except ExprError as exc:
            return self.fail(Diagnostic(code="SF413", message=f"{what}: {exc}", span=expr.span))

    def fail(self, diagnostic: Diagnostic) -> int:
        """Record a bound problem and go on with a bound of 1, so every problem is reported."""
        self.errors.append(diagnostic)
        return 1

    def arg(self, args: list[ast.Arg], name: str, env: dict[str, Abstract], default: Any, what: str) -> Any:
        for a in args:
            if a.name == name:
                return self.static(a.value, env, what)
        return default

    def count(self, args: list[ast.Arg], name: str, env: dict[str, Abstract], default: int, where: str) -> int:
        value = self.arg(args, name, env, default, f"`{name}:` of {where}")
        try:
            result = int(value)
        except (TypeError, ValueError):
            result = default
        return max(0, result)

    def max_tokens(self, node: Any, env: dict[str, Abstract]) -> int:
        for a in node.args:
            if a.name == "max_tokens":
                return int(self.static(a.value, env, "`max_tokens:`"))
        using = getattr(node, "using", None)
        decl = self.models.get(using) if using else next(iter(self.models.values()), None)
        if decl is not None:
            for a in decl.args:
                if a.name == "max_tokens":
                    return int(self.static(a.value, {}, "`max_tokens:` of the model"))
        return steps.DEFAULT_MAX_TOKENS

    def length(self, expr: Any, env: dict[str, Abstract]) -> int | None:
        if isinstance(expr, ast.ListExpr):
            return len(expr.items)
        if isinstance(expr, ast.Name):
            return env.get(expr.id, UNKNOWN).length
        if isinstance(expr, ast.Attr):
            return self.length(expr.value, env)
        return None

    # ------------------------------------------------------------ blocks

    def block(self, block: ast.Block, env: dict[str, Abstract]) -> Bound:
        plan = build_plan(block, self.prompts)
        env = dict(env)
        costs: dict[str, Bound] = {}
        for node_id in plan.order:
            stmt = plan.graph.nodes[node_id]["stmt"]
            costs[node_id] = self.stmt(stmt, env)
        total = Bound()
        for c in costs.values():
            total = Bound(total.calls + c.calls, total.tokens + c.tokens, total.parallel)
        return Bound(total.calls, total.tokens, _max_parallel(plan.graph, costs))

    def stmt(self, stmt: Any, env: dict[str, Abstract]) -> Bound:
        kind = stmt.stmt
        if kind == "if":
            then = self.block(stmt.then, env)
            other = self.block(stmt.orelse, env) if stmt.orelse else Bound()
            for name in set(_assigned(stmt.then)) & set(_assigned(stmt.orelse)):
                env[name] = UNKNOWN
            return then.either(other)
        if kind in ("assign", "return", "next", "yield"):
            value = stmt.value
            if value is None:
                return self.fields(stmt.fields, env)
            bound, abstract = self.rhs(value, env)
            if kind == "assign":
                env[stmt.target] = abstract
            if kind == "yield":
                self.last_yield = abstract
            return bound
        if kind == "return" or kind == "abstain":
            return self.fields(stmt.fields, env)
        return Bound()

    def fields(self, fields: list[ast.Field_] | None, env: dict[str, Abstract]) -> Bound:
        return Bound()

    def rhs(self, node: Any, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        if not ast.is_step(node):
            try:
                return Bound(), _known(evaluate(node, lambda n: _static_lookup(env, n)))
            except (NotStatic, ExprError):
                return Bound(), Abstract(length=self.length(node, env))
        return getattr(self, f"step_{node.kind}")(node, env)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ steps

    def step_generate(self, node: ast.Generate, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        n = self.count(node.args, "n", env, 1, "generate")
        has_n = any(a.name == "n" for a in node.args)
        return Bound(1, n * self.max_tokens(node, env), n), Abstract(length=n if has_n else None)

    def step_deepen(self, node: ast.Deepen, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        n = self.count(node.args, "n", env, 1, "deepen")
        budget = self.count(node.args, "budget", env, 1, "deepen")
        cap = self.count(node.args, "max_total", env, budget, "deepen")
        gamma = float(self.arg(node.args, "gamma", env, 2.0, "`gamma:` of deepen"))
        rounds = len(deepen_budgets(budget, gamma, cap))
        has_n = any(a.name == "n" for a in node.args)
        return Bound(1 + (rounds - 1) * n, n * cap, n), Abstract(length=n if has_n else None)

    def step_extract(self, node: ast.Extract, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        return Bound(), Abstract(length=self.length(node.source, env))

    def step_evaluate(self, node: ast.Evaluate, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        if node.mode == "critique":
            return Bound(1, self.max_tokens(node, env), 1), UNKNOWN
        if node.mode == "choice":
            options = self.arg(node.args, "options", env, [], "`options:`")
            return Bound(1, 0, max(1, len(options))), UNKNOWN
        if node.mode == "likelihood":
            of = next((a.value for a in node.args if a.name == "of"), None)
            length = self.length(of, env) if of is not None else None
            return Bound(1, 0, length or 1), Abstract(length=length)
        return Bound(1, 0, 1), UNKNOWN

    def step_vote(self, node: ast.Vote, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        if node.mode == "llm":
            return Bound(1, self.max_tokens(node, env), 1), UNKNOWN
        return Bound(), UNKNOWN

    def step_vote_times(self, node: ast.VoteTimes, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        count = int(self.static(node.count, env, "the number of votes"))
        body = self.block(node.body, env).times(count, concurrent=True)
        if node.mode == "llm":
            body = body.then(Bound(1, self.max_tokens(node, env), 1))
        return body, UNKNOWN

    def step_refine(self, node: ast.Refine, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        rounds = self.count(node.args, "max", env, 1, "refine")
        inner = dict(env)
        inner[node.var] = UNKNOWN
        return self.block(node.body, inner).times(rounds, concurrent=False), UNKNOWN

    def step_map(self, node: ast.MapStep, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        length = self.length(node.source, env)
        limit = next((a for a in node.args if a.name == "limit"), None)
        if limit is not None:
            cap = int(self.static(limit.value, env, "`limit:` of map"))
            length = cap if length is None else min(length, cap)
        if length is None:
            length = self.fail(Diagnostic(
                code="SF411",
                message="unbounded loop: map over a list whose length is unknown before the run",
                span=node.span,
                hint="add a static cap: map x in xs with (limit: 5) { ... }",
            ))
        inner = dict(env)
        inner[node.var] = UNKNOWN
        return self.block(node.body, inner).times(length, concurrent=True), Abstract(length=length)

    def step_call(self, node: ast.CallRecipe, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        found = self.program.resolve_call(self.file, node.target)
        if found is None:
            return Bound(), UNKNOWN
        file, callee = found
        inputs: dict[str, Any] = {}
        callee_env_unknown: list[str] = []
        for a in node.args:
            try:
                inputs[a.name] = evaluate(a.value, lambda n: _static_lookup(env, n))
            except (NotStatic, ExprError):
                callee_env_unknown.append(a.name)
        model = _CostModel(self.program, file, callee)
        model.errors = self.errors
        callee_env: dict[str, Abstract] = {}
        for p in callee.params:
            if p.name in inputs:
                callee_env[p.name] = _known(inputs[p.name])
            elif p.name in callee_env_unknown or p.default is None:
                callee_env[p.name] = UNKNOWN
            else:
                callee_env[p.name] = _known(evaluate(p.default, lambda n: (_ for _ in ()).throw(NotStatic(n))))
        return model.block(callee.body, callee_env), UNKNOWN

    def step_search(self, node: ast.Search, env: dict[str, Abstract]) -> tuple[Bound, Abstract]:
        parts = {p.name: p for p in node.parts}
        inner = dict(env)
        inner["state"], inner["depth"] = UNKNOWN, UNKNOWN
        expand = self.block(parts["expand"].body, inner) if "expand" in parts else Bound()
        k = self.last_yield.length or 1
        value = self.block(parts["value"].body, dict(inner)) if "value" in parts else Bound()
        per_state = expand.then(value.times(k, concurrent=True))
        depth = self.count(node.args, "depth", env, 1, "search")
        if node.strategy == "mcts":
            sims = self.count(node.args, "simulations", env, 1, "search")
            return per_state.times(sims, concurrent=False), UNKNOWN
        beam = self.count(node.args, "beam", env, 1, "search")
        total, states = Bound(), 1
        for _ in range(depth):
            total = total.then(per_state.times(states, concurrent=True))
            states = min(beam, states * k)
        return total, UNKNOWN


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


def _static_lookup(env: dict[str, Abstract], name: str) -> Any:
    a = env.get(name, UNKNOWN)
    if not a.known:
        raise NotStatic(name)
    return a.value


def _assigned(block: ast.Block | None) -> list[str]:
    return [s.target for s in block.stmts if isinstance(s, ast.Assign)] if block else []


def _max_parallel(graph: nx.DiGraph, costs: dict[str, Bound]) -> int:
    """Largest total parallelism over statements that may run at the same time (max-weight antichain)."""
    weighted = {n: costs[n].parallel for n in graph.nodes if costs[n].parallel > 0}
    if not weighted:
        return 0
    if len(weighted) == 1:
        return next(iter(weighted.values()))
    closure = nx.transitive_closure_dag(graph)
    independent = nx.Graph()
    for n, w in weighted.items():
        independent.add_node(n, weight=w)
    nodes = list(weighted)
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if not closure.has_edge(a, b) and not closure.has_edge(b, a):
                independent.add_edge(a, b)
    _, weight = nx.max_weight_clique(independent, weight="weight")
    return int(weight)
