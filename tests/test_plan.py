"""Plans: golden text dumps, Mermaid/DOT renderings, and static cost bounds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import sfdsl
from sfdsl.compiler import compile_text
from sfdsl.plan import to_dot, to_mermaid
from sfdsl.steps.deepen import deepen_budgets
from tests.conftest import golden_text

OK = Path(__file__).parent / "fixtures" / "ok"
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", sorted(p.stem for p in OK.glob("*.sf")))
def test_plan_matches_golden_dump(name: str) -> None:
    text = golden_text(OK / f"{name}.sf")
    golden = GOLDEN / f"{name}.plan.txt"
    if os.environ.get("SFDSL_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_data_and_control_edges() -> None:
    compiled = compile_text('''recipe r(q: str, t: float = 0.5) {
      prompt p = "{{ q }}"
      prompt j = "Judge {{ a }}"
      a = generate p
      s = evaluate choice j (options: ["yes", "no"])
      unrelated = generate p
      if s.score < t { abstain reason: "low" }
      return answer: a, score: s.score + len(unrelated)
    }''')
    graph = compiled.plans["r"].graph
    assert graph.edges["a", "s"]["kind"] == "data"  # template variable {{ a }}
    assert not graph.has_edge("a", "unrelated")
    [gate] = [n for n in graph if n.startswith("if@")]
    [ret] = [n for n in graph if n.startswith("return@")]
    assert graph.edges[gate, ret]["kind"] == "control"


def test_renderings_show_loop_bodies() -> None:
    recipe = sfdsl.load(OK / "constructs.sf").recipe("everything")
    mermaid = to_mermaid(recipe.plan, recipe.name)
    assert mermaid.startswith("flowchart TD")
    assert 'subgraph fixed["fixed: refine as current"]' in mermaid
    dot = to_dot(recipe.plan, recipe.name)
    assert dot.startswith('digraph "everything"') and "cluster_" in dot


def test_bound_scales_with_inputs() -> None:
    recipe = sfdsl.load(OK / "self_consistency.sf").recipe()
    small, large = recipe.bound({"n": 2}), recipe.bound({"n": 16})
    assert (small.calls, small.tokens, small.parallel) == (1, 512, 2)
    assert (large.calls, large.tokens, large.parallel) == (1, 4096, 16)


def test_bound_of_loops_and_branches() -> None:
    compiled = compile_text('''recipe r(q: str) {
      prompt p = "{{ q }}"
      prompt c = "critique {{ cur }}"
      d = generate p (max_tokens: 10)
      fixed = refine d as cur (max: 3) {
        f = evaluate critique c (pass: /ok/, max_tokens: 20)
        stop when f.score > 0.5
        next generate p (max_tokens: 10)
      }
      both = vote 4 times by majority { x = generate p (max_tokens: 5)  yield x }
      if len(q) > 3 { extra = generate p (n: 6, max_tokens: 7) } else { extra = generate p (max_tokens: 1) }
      return answer: fixed.value, score: both.share + len(extra)
    }''')
    bound = compiled.bounds["r"]
    assert bound.calls == 1 + 3 * 2 + 4 + 1
    assert bound.tokens == 10 + 3 * 30 + 4 * 5 + 42
    # the refine (1 seq), the 4 concurrent votes (4) and the if (6) may all run at once
    assert bound.parallel == 1 + 4 + 6


def test_deepen_budgets_follow_gamma_until_cap() -> None:
    assert deepen_budgets(64, 2.0, 448) == [64, 128, 256]
    assert deepen_budgets(100, 1.5, 300) == [100, 150, 50]
    assert sum(deepen_budgets(7, 3.0, 1000)) == 1000


def test_a_run_reads_the_compiled_plans_and_never_plans_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loop bodies, if branches and called recipes are planned once, at compile time."""
    from sfdsl import cost, plan
    from sfdsl.runtime.backends.scripted import ScriptedBackend

    source = """
recipe helper(x: str) {
  prompt p = "again {{ x }}"
  a = generate p (max_tokens: 2)
  return a
}
recipe main(q: str) {
  prompt p = "{{ q }}"
  r = refine q as d (max: 2) {
    c = generate p (max_tokens: 2)
    if c == "stop" {
      stop when true
    }
    next c
  }
  m = map x in ["a", "b"] {
    yield call helper(x: x)
  }
  return answer: r.value, score: len(m)
}
"""
    program = sfdsl.compile(source)

    def no_planning(*args: object, **kwargs: object) -> None:
        raise AssertionError("planned again at run time")

    monkeypatch.setattr(plan, "build_plan", no_planning)
    monkeypatch.setattr(cost, "plan_recipe", no_planning)
    backend = ScriptedBackend({"go": ["one", "two"], "again": ["h1", "h2"]})
    result = program.recipe("main").run({"q": "go"}, backend=backend)
    assert result.answer == "two" and result.score == 2
