"""The `cluster` step: exact, similarity and llm modes on the scripted backend, with exact numbers."""

from __future__ import annotations

import math
import re

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.errors import CompileError
from sfdsl.runtime.clustering import cluster_exact, cluster_similar, summarise
from sfdsl.values import NoAnswer
from tests.conftest import run_source

EXACT = """
recipe r(question: str) -> (answer, score, sizes, groups, count, share, entropy) {
  prompt ask = "{{ question }}"
  samples = generate ask (n: 3, max_tokens: 16)
  answers = extract number from samples after /The answer is/
  c = cluster answers by exact
  return answer: c.largest, score: 1 - c.entropy / log(3), sizes: c.sizes, groups: c.groups, count: c.count,
         share: c.share, entropy: c.entropy
}
"""


def test_cluster_by_exact_over_4_5_4() -> None:
    backend = ScriptedBackend(["The answer is 4", "The answer is 5", "The answer is 4"])
    result = run_source(EXACT, backend, question="2+2?")
    assert result.answer == 4
    assert result.outputs["sizes"] == [2, 1]
    assert result.outputs["groups"] == [[0, 2], [1]]
    assert result.outputs["count"] == 2
    assert result.outputs["share"] == pytest.approx(2 / 3)
    assert round(result.outputs["entropy"], 6) == 0.636514
    assert result.score == pytest.approx(1 - 0.636514 / math.log(3), abs=1e-6)
    assert result.cost.calls == 1 and result.bound["calls"] == 1


def test_a_missing_answer_joins_no_cluster_but_counts_in_the_share() -> None:
    result = run_source(EXACT, ScriptedBackend(["The answer is 4", "no idea", "The answer is 4.0"]), question="q")
    assert result.outputs["groups"] == [[0, 2]] and result.outputs["sizes"] == [2]
    assert result.outputs["share"] == pytest.approx(2 / 3) and result.outputs["entropy"] == 0.0


def test_no_answer_at_all_gives_no_largest() -> None:
    result = run_source(EXACT, ScriptedBackend(["x", "y", "z"]), question="q")
    assert result.answer is None and result.outputs["count"] == 0 and result.outputs["share"] == 0.0


def test_exact_normalises_case_space_and_numbers() -> None:
    assert cluster_exact(["Paris", " paris ", "Lyon", 4, 4.0, NoAnswer(), None]) == [[0, 1], [2], [3, 4]]


def test_similarity_is_greedy_against_representatives() -> None:
    answers = ["the capital is Paris", "The capital is Paris.", "Lyon", "the capital is paris!!"]
    assert cluster_similar(answers, 0.8) == [[0, 1, 3], [2]]
    assert cluster_similar(answers, 1.0) == [[0], [1], [2], [3]]


def test_summarise_orders_groups_by_size_then_first_member() -> None:
    clusters = summarise(["a", "b", "b", "c"], [[0], [1, 2], [3]])
    assert clusters.groups == [[1, 2], [0], [3]] and clusters.largest == "b"
    assert clusters.entropy == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))


SIMILAR = """
recipe r(question: str) -> (answer, count) {
  prompt ask = "{{ question }}"
  samples = generate ask (n: 4, max_tokens: 16)
  c = cluster samples by similarity (threshold: 0.8)
  return answer: c.largest, count: c.count
}
"""


def test_cluster_by_similarity_in_a_recipe() -> None:
    backend = ScriptedBackend(["Paris is the capital", "paris is the capital.", "It is Lyon", "Paris is the capital!"])
    result = run_source(SIMILAR, backend, question="q")
    assert result.answer == "Paris is the capital" and result.outputs["count"] == 2


LLM = """
recipe r(question: str, n: int = 4) -> (answer, sizes, entropy) {
  prompt ask = "{{ question }}"
  samples = generate ask (n: n, max_tokens: 16)
  c = cluster samples by llm
  return answer: c.largest, sizes: c.sizes, entropy: c.entropy
}
"""


def _meaning(text: str) -> str:
    return "paris" if "paris" in text.lower() else text.lower()


def _judge(prompt: str, continuation: str) -> float:
    """P(' (A)') is high when both answers in the implication prompt mean the same."""
    first = re.search(r"Answer 1: (.*)", prompt)
    second = re.search(r"Answer 2: (.*)", prompt)
    assert first and second
    same = _meaning(first.group(1)) == _meaning(second.group(1))
    return math.log(0.9 if same == (continuation == " (A)") else 0.1)


def test_cluster_by_llm_asks_both_ways_against_representatives() -> None:
    replies = ["Paris", "It is Paris", "Lyon", "the city of Paris"]
    backend = ScriptedBackend(replies, scores=_judge)
    result = run_source(LLM, backend, question="capital of France?")
    assert result.answer == "Paris" and result.outputs["sizes"] == [3, 1]
    assert result.outputs["entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    # answer 1 vs 1 representative (2 asks), answer 2 vs 1 (2), answer 3 vs 2 (4): 8 choice evaluations
    assert result.cost.calls == 1 + 8
    assert result.bound["calls"] == 1 + 4 * 3  # worst case: every answer its own cluster, n(n-1) asks
    assert result.cost.calls <= result.bound["calls"]


def test_cluster_by_llm_worst_case_meets_the_bound() -> None:
    backend = ScriptedBackend(["a", "b", "c", "d"], scores=lambda p, c: math.log(0.1 if c == " (A)" else 0.9))
    result = run_source(LLM, backend, question="q")
    assert result.outputs["sizes"] == [1, 1, 1, 1]
    assert result.cost.calls == result.bound["calls"] == 1 + 12


def test_cluster_by_llm_with_a_custom_prompt_sees_a_and_b() -> None:
    source = LLM.replace('prompt ask = "{{ question }}"',
                         'prompt ask = "{{ question }}"\n  prompt same = "Q: {{ question }}\\nAnswer 1: {{ a }}\\n'
                         'Answer 2: {{ b }}\\nSame?"').replace("by llm", "by llm (prompt: same, threshold: 0.6)")
    backend = ScriptedBackend(["Paris", "Paris!", "Lyon", "Lyon"], scores=_judge)
    result = run_source(source, backend, question="capital?")
    assert result.outputs["sizes"] == [2, 2]
    asked = [r.prompt.text for r in backend.requests[1:]]
    assert asked and all(text is not None and text.startswith("Q: capital?\nAnswer 1: ") for text in asked)


@pytest.mark.parametrize(("body", "code", "message"), [
    ("c = cluster 3 by exact", "SF306", "cluster needs a list of answers, but got int"),
    ("c = cluster [1, 2] by exakt", "SF215", "unknown cluster mode 'exakt' (did you mean 'exact'?)"),
    ("c = cluster [1, 2] by similarity (treshold: 0.5)", "SF305", "unknown parameter 'treshold'"),
    ("c = cluster [1, 2] by llm (prompt: nope)", "SF204", "must name a prompt"),
])
def test_cluster_errors(body: str, code: str, message: str) -> None:
    with pytest.raises(CompileError) as info:
        sfdsl.compile(f"recipe r() {{\n  {body}\n  return c.largest\n}}")
    assert any(d.code == code and message in d.message for d in info.value.diagnostics), info.value.diagnostics


def test_cluster_by_llm_needs_a_list_of_known_length() -> None:
    source = "recipe r(xs: list[str]) {\n  c = cluster xs by llm\n  return c.largest\n}"
    with pytest.raises(CompileError) as info:
        sfdsl.compile(source)
    assert [d.code for d in info.value.diagnostics] == ["SF411"]
    program = sfdsl.compile(source.replace("by llm", "by exact"))
    assert program.recipe().bound().calls == 0


def test_cluster_bound_with_a_known_list() -> None:
    program = sfdsl.compile("recipe r() {\n  c = cluster [\"a\", \"b\", \"c\"] by llm\n  return c.largest\n}")
    bound = program.recipe().bound()
    assert (bound.calls, bound.tokens, bound.parallel) == (6, 0, 8)


def test_cluster_by_exact_groups_calls_and_records_by_their_canonical_form() -> None:
    from sfdsl.values import Action

    calls = [Action(kind="call", id="1", name="add", arguments={"a": 2, "b": 3}),
             Action(kind="call", id="2", name="add", arguments={"a": 5, "b": 3}),
             Action(kind="call", id="3", name="add", arguments={"b": 3.0, "a": 2})]
    assert cluster_exact(calls) == [[0, 2], [1]]
    assert cluster_exact([{"a": 2, "b": [1.0]}, {"b": [1], "a": 2.0}, {"a": 3}]) == [[0, 1], [2]]
