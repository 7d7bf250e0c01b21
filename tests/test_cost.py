"""Static cost bounds: the bound algebra and each step kind's worst case, read from the compiled plan."""

from __future__ import annotations

import pytest

import sfdsl
from sfdsl import cost, plan
from sfdsl.bounds import Bound
from sfdsl.compiler import compile_text
from sfdsl.errors import CompileError
from sfdsl.program import recipe_key
from sfdsl.steps.deepen import deepen_budgets


def _bound(body: str, params: str = "", **inputs: object) -> Bound:
    program = sfdsl.compile(f'recipe r({params}) {{\n  prompt p = "x"\n{body}\n}}')
    return program.recipe().bound(inputs or None)


def test_bound_algebra() -> None:
    a, b = Bound(1, 10, 2), Bound(2, 5, 3)
    assert a.then(b) == Bound(3, 15, 3)
    assert a.times(3, concurrent=True) == Bound(3, 30, 6)
    assert a.times(3, concurrent=False) == Bound(3, 30, 2)
    assert a.either(b) == Bound(2, 10, 3)
    assert str(a) == "≤ 1 model calls, ≤ 10 generated tokens, ≤ 2 sequences at once"


def test_deepen_budgets_grow_by_gamma_to_the_cap() -> None:
    assert deepen_budgets(64, 2.0, 256) == [64, 128, 64]
    assert deepen_budgets(10, 1.0, 25) == [10, 10, 5]
    assert sum(deepen_budgets(3, 3.0, 1000)) == 1000


@pytest.mark.parametrize(("body", "expected"), [
    ("  a = generate p (max_tokens: 10)\n  return a", Bound(1, 10, 1)),
    ("  a = generate p (n: 4, max_tokens: 10)\n  return a", Bound(1, 40, 4)),
    ("  a = generate p\n  return a", Bound(1, 256, 1)),  # the spec's default max_tokens
    ("  a = deepen p (budget: 64, max_total: 256, n: 2)\n  return a", Bound(1 + 2 * 2, 512, 2)),
    ("  a = evaluate choice p (options: [\" (A)\", \" (B)\", \" (C)\"])\n  return a", Bound(1, 0, 3)),
    ("  a = generate p (n: 3, max_tokens: 8)\n  v = vote a by llm\n  return v", Bound(2, 24 + 64, 3)),
    ("  r = refine \"x\" as d (max: 3) {\n    next generate p (max_tokens: 5)\n  }\n  return r", Bound(3, 15, 1)),
    ("  m = map x in [1, 2, 3] {\n    yield generate p (max_tokens: 5)\n  }\n  return m", Bound(3, 15, 3)),
    ("  v = vote 4 times by majority {\n    yield generate p (max_tokens: 5)\n  }\n  return v", Bound(4, 20, 4)),
])
def test_step_bounds(body: str, expected: Bound) -> None:
    assert _bound(body) == expected


def test_independent_steps_add_their_parallelism_and_dependent_ones_do_not() -> None:
    independent = "  a = generate p (n: 2, max_tokens: 1)\n  b = generate p (n: 3, max_tokens: 1)\n  return a"
    assert _bound(independent).parallel == 5
    dependent = ('  a = generate p (n: 2, max_tokens: 1)\n  prompt q = "{{ a }}"\n'
                 "  b = generate q (n: 3, max_tokens: 1)\n  return b")
    assert _bound(dependent).parallel == 3


def test_if_takes_the_worse_branch() -> None:
    body = ("  if k > 1 {\n    a = generate p (max_tokens: 9)\n  } else {\n"
            "    a = generate p (n: 2, max_tokens: 1)\n  }\n  return a")
    assert _bound(body, "k: int = 2") == Bound(1, 9, 2)


def test_inputs_override_defaults() -> None:
    body = "  a = generate p (n: k, max_tokens: 10)\n  return a"
    assert _bound(body, "k: int = 2") == Bound(1, 20, 2)
    assert _bound(body, "k: int = 2", k=5) == Bound(1, 50, 5)


def test_search_bounds_follow_the_strategy() -> None:
    parts = ("{\n    expand {\n      yield generate p (n: 2, max_tokens: 4)\n    }\n"
             "    value {\n      yield 1\n    }\n  }")
    beam = _bound(f'  s = search beam from "q" with (depth: 2, beam: 1) {parts}\n  return s')
    assert beam == Bound(2, 16, 2)  # one state per level, each expanded once
    mcts = _bound(f'  s = search mcts from "q" with (simulations: 3, depth: 2) {parts}\n  return s')
    assert mcts == Bound(3, 24, 2)


def test_a_call_is_bounded_by_its_callee() -> None:
    source = ('recipe inner(k: int = 1) {\n  prompt p = "x"\n  a = generate p (n: k, max_tokens: 2)\n  return a\n}\n'
              'recipe outer() {\n  r = call inner(k: 3)\n  return r\n}')
    assert sfdsl.compile(source).recipe("outer").bound() == Bound(1, 6, 3)


@pytest.mark.parametrize(("body", "code"), [
    ("  a = generate p (n: 2)\n  m = map x in a.text {\n    yield x\n  }\n  b = extract list from a[0]\n"
     "  mm = map y in b {\n    yield y\n  }\n  return mm", "SF411"),
    ("  a = generate p\n  n = extract int from a\n  b = generate p (n: n)\n  return b", "SF412"),
])
def test_loops_bounded_only_at_run_time_are_errors(body: str, code: str) -> None:
    with pytest.raises(CompileError) as info:
        sfdsl.compile(f'recipe r() {{\n  prompt p = "x"\n{body}\n}}')
    assert code in [d.code for d in info.value.diagnostics]


def test_the_cost_pass_reads_the_compiled_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_text('recipe r() {\n  prompt p = "x"\n  a = generate p (max_tokens: 3)\n  return a\n}')
    program, recipe = compiled.program, compiled.recipes()[0]

    def no_planning(*args: object) -> None:
        raise AssertionError("the cost pass planned the recipe again")

    monkeypatch.setattr(cost, "plan_recipe", no_planning)
    assert recipe_key(program, program.main, "r") in compiled.plans
    assert cost.recipe_bound(program, program.main, recipe, plans=compiled.plans) == Bound(1, 3, 1)


def test_compiling_bounds_each_recipe_once_and_collects_its_declarations_once(monkeypatch: pytest.MonkeyPatch) -> None:
    source = """
recipe helper(q: str) { prompt p = "{{ q }}"  a = generate p (max_tokens: 2)  return a }
recipe main(q: str) {
  model m = llama(model: "default")
  prompt p = "{{ q }}"
  a = generate p (max_tokens: 3)
  b = call helper(q: q)
  return a
}
"""
    walks: list[str] = []
    collected: list[str] = []
    recipe_cost, collect = cost.CostModel.recipe_cost, plan.collect_prompts

    def counted_cost(self: cost.CostModel, given: dict[str, object]) -> Bound:
        walks.append(self.recipe.name)
        return recipe_cost(self, given)  # type: ignore[arg-type]

    def counted_collect(block: object) -> object:
        collected.append("prompts")
        return collect(block)  # type: ignore[arg-type]

    monkeypatch.setattr(cost.CostModel, "recipe_cost", counted_cost)
    monkeypatch.setattr(plan, "collect_prompts", counted_collect)
    compiled = compile_text(source)
    assert sorted(walks) == ["helper", "helper", "main"]  # each recipe once, and helper again inside main's call
    assert collected == ["prompts", "prompts"]  # once per recipe, carried by its plan
    key = recipe_key(compiled.program, compiled.program.main, "main")
    assert compiled.bounds[key] == Bound(2, 5, 2)
    assert set(compiled.plans[key].models) == {"m"} and set(compiled.plans[key].prompts) == {"p"}


# ---------------------------------------------------------------- sequences at once: a maximum-weight antichain


def _brute_antichain(graph: object, weights: dict[str, int]) -> int:
    import itertools

    import networkx as nx

    closure = nx.transitive_closure_dag(graph)
    best = 0
    nodes = list(weights)
    for size in range(1, len(nodes) + 1):
        for group in itertools.combinations(nodes, size):
            pairs = itertools.combinations(group, 2)
            if all(not closure.has_edge(a, b) and not closure.has_edge(b, a) for a, b in pairs):
                best = max(best, sum(weights[n] for n in group))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_max_parallel_is_the_maximum_weight_antichain_of_random_dags(seed: int) -> None:
    import random

    import networkx as nx

    rng = random.Random(seed)
    n = rng.randint(1, 9)
    graph = nx.DiGraph()
    graph.add_nodes_from(f"s{i}" for i in range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < 0.3:
                graph.add_edge(f"s{i}", f"s{j}")
    weights = {f"s{i}": rng.choice([0, 1, 1, 2, 3, 5]) for i in range(n)}
    costs = {node: Bound(0, 0, w) for node, w in weights.items()}
    assert cost._max_parallel(graph, costs) == (_brute_antichain(graph, weights), True)


def test_max_parallel_of_a_diamond_counts_the_two_middle_steps() -> None:
    import networkx as nx

    graph = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    costs = {"a": Bound(0, 0, 4), "b": Bound(0, 0, 2), "c": Bound(0, 0, 3), "d": Bound(0, 0, 1)}
    assert cost._max_parallel(graph, costs) == (5, True)


def test_max_parallel_past_the_exact_limit_is_the_sum_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import networkx as nx

    monkeypatch.setattr(cost, "MAX_EXACT_PLAN", 2)
    graph = nx.DiGraph([("a", "b")])
    bound, exact = cost._max_parallel(graph, {"a": Bound(0, 0, 2), "b": Bound(0, 0, 3)})
    assert (bound, exact) == (5, False)
    rough = Bound(1, 1, 5, parallel_exact=False)
    assert "upper bound" in str(rough) and "upper bound" not in str(Bound(1, 1, 5))
    assert not rough.then(Bound()).parallel_exact and not Bound().either(rough).parallel_exact


def _flat(n: int) -> str:
    steps = "\n".join(f"  a{i} = generate p (max_tokens: 1)" for i in range(n))
    return f'recipe flat() {{\n  prompt p = "x"\n{steps}\n  return a0\n}}\n'


def test_flat_recipe_of_1000_steps_is_no_recursion_error() -> None:
    compiled = compile_text(_flat(1000))
    assert compiled.bounds["flat"] == Bound(1000, 1000, 1000)


def test_flat_recipe_of_300_steps_bounds_without_clique_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import networkx as nx

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("clique search is exponential")

    monkeypatch.setattr(nx, "max_weight_clique", forbidden)
    assert compile_text(_flat(300)).bounds["flat"].parallel == 300


def test_chained_steps_of_a_long_recipe_are_bounded_by_the_widest_layer() -> None:
    steps = ["  a0 = generate p (max_tokens: 1)"]
    for i in range(1, 400):  # pairs of steps, each pair reading the one before: width 2
        steps.append(f'  prompt q{i} = "{{{{ a{i - 1} }}}}"')
        steps.append(f"  a{i} = generate q{i} (n: 2, max_tokens: 1)")
    text = 'recipe chain() {\n  prompt p = "x"\n' + "\n".join(steps) + "\n  return a399\n}\n"
    assert compile_text(text).bounds["chain"].parallel == 2


@pytest.mark.parametrize(("depth", "beam", "k"), [(d, b, k) for d in (0, 1, 2, 5, 9) for b in (0, 1, 3, 8)
                                                  for k in (1, 2, 3)])
def test_beam_bound_counts_the_levels_like_the_plain_loop(depth: int, beam: int, k: int) -> None:
    from sfdsl.steps.search import beam_bound

    per_state = Bound(3, 7, 2)
    expected, states = Bound(), 1
    for _ in range(depth):
        expected = expected.then(per_state.times(states, concurrent=True))
        states = min(beam, states * k)
    assert beam_bound(per_state, depth, beam, k) == expected


def test_tree_of_thoughts_with_huge_depth_k_and_beam_bounds_at_once() -> None:
    from pathlib import Path

    recipes = Path(__file__).resolve().parent.parent / "recipes"
    recipe = sfdsl.load(recipes / "tree_of_thoughts.sf").recipe()
    bound = recipe.bound({"depth": 10**9, "k": 10**6, "beam": 10**6})
    assert bound.calls > 10**20 and bound.parallel >= 10**6
