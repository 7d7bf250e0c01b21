"""Every construct executed on the scripted backend, with assertions that could fail."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path

import pytest

import sfdsl
from sfdsl import Budget, ScriptedBackend
from sfdsl.errors import BudgetExceeded, CompileError, InputError, ScriptExhausted, StepError
from tests.conftest import events, run_source

SC = """
recipe sc(question: str, n: int = 5) -> (answer, score) {
  prompt solve = "{{ question }} Finish with 'The answer is X'."
  samples = generate solve (n: n, temperature: 0.7, max_tokens: 64)
  answers = extract number from samples after /The answer is/
  return vote answers by majority
}
"""


def test_generate_n_extract_and_majority_vote() -> None:
    replies = ["The answer is 4", "The answer is 5", "no idea", "The answer is 4.0", "The answer is 5"]
    backend = ScriptedBackend(replies)
    result = run_source(SC, backend, question="2+2?")
    assert result.answer == 4  # 4 and 5 tie at 2 votes; 4 reached 2 votes first (sample 4 vs 5)
    assert result.score == pytest.approx(0.5)
    [request] = backend.requests
    assert request.n == 5 and request.max_tokens == 64 and request.temperature == 0.7
    assert result.cost.calls == 1 and result.cost.completion_tokens == sum(len(r.split()) for r in replies)
    assert result.cost.calls <= result.bound["calls"]


def test_vote_tie_goes_to_the_answer_reaching_the_count_first() -> None:
    result = run_source(SC, ScriptedBackend(["The answer is 7", "The answer is 3", "The answer is 3",
                                             "The answer is 7", "x"]), question="q")
    assert result.answer == 3  # 3 reached two votes (sample 3) before 7 did (sample 4)


def test_no_answer_never_votes() -> None:
    result = run_source(SC, ScriptedBackend(["junk"] * 4 + ["The answer is 9"]), question="q")
    assert result.answer == 9 and result.score == 1.0


def test_hostile_inputs_stay_literal_text() -> None:
    backend = ScriptedBackend(["The answer is 1"] * 5)
    payload = "{{ 7*7 }} {% for x in range(3) %}x{% endfor %} {{ ''.__class__.__mro__ }}"
    run_source(SC, backend, question=payload)
    assert backend.requests[0].prompt.text.startswith(payload)


def test_template_cannot_reach_python_internals() -> None:
    source = """recipe r(q: any) {
      prompt p = "{{ q.__class__.__mro__ }}"
      x = generate p
      return x
    }"""
    with pytest.raises(StepError, match="unsafe"):
        run_source(source, ScriptedBackend(["a"]), q="hi")
    with pytest.raises(CompileError, match="SF302"):  # on a typed value, the checker already refuses it
        run_source(source.replace("q: any", "q: str"), ScriptedBackend(["a"]), q="hi")


def test_chat_prompt_with_prefill_and_model_defaults() -> None:
    source = """recipe r(q: str) {
      model judge = scripted(file: "unused.json", temperature: 0.3, max_tokens: 9)
      prompt p = chat { system: "Be brief." user: "{{ q }}" assistant: "Answer:" }
      x = generate p using judge
      return x
    }"""
    backend = ScriptedBackend(["42"])
    result = run_source(source, backend, q="life?")
    request = backend.requests[0]
    assert request.prompt.has_prefill and request.prompt.messages[-1].content == "Answer:"
    assert (request.temperature, request.max_tokens) == (0.3, 9)
    assert result.answer == "42"


def test_explicit_seed_and_derived_seeds_are_stable() -> None:
    source = """recipe r(q: str) { prompt p = "{{ q }}"
      a = generate p (seed: 11)
      b = generate p
      return answer: a + b }"""
    first, second = ScriptedBackend(["x", "y"]), ScriptedBackend(["x", "y"])
    run_source(source, first, q="s")
    run_source(source, second, q="s")
    seeds = sorted(r.seed for r in first.requests)
    assert 11 in seeds and seeds == sorted(r.seed for r in second.requests)


@pytest.mark.parametrize(
    ("mode", "text", "expected"),
    [
        ("number", "3 apples then The answer is -1,250.5!", -1250.5),
        ("int", "The answer is 7.", 7),
        ("bool", "I think... yes.", True),
        ('choice ["paris", "london"]', "It is London.", "london"),
        ("regex /answer: (\\w+)/", "answer: Blue.", "blue"),
        ("text", "  Hello there.  ", "Hello there"),
    ],
)
def test_extract_modes(mode: str, text: str, expected: object) -> None:
    source = f"""recipe r() {{ prompt p = "go"  t = generate p  v = extract {mode} from t  return v }}"""
    assert run_source(source, ScriptedBackend([text])).answer == expected


def test_failed_extraction_is_a_typed_no_answer() -> None:
    source = """recipe r() { prompt p = "go"  t = generate p  v = extract number from t
      if v == none { abstain reason: "no number" }
      return v }"""
    result = run_source(source, ScriptedBackend(["nothing here"]))
    assert result.abstained and result.reason == "no number" and result.answer is None


def test_evaluate_choice_rating_likelihood_and_critique() -> None:
    source = """recipe r(q: str) -> (answer, score, rating, lik, raw, verdict) {
      prompt ptrue = "Is {{ q }} true? (A) True (B) False. The proposed answer is:"
      prompt rate = "Rate it 0-9:"
      prompt ctx = "Context"
      prompt crit = "Critique {{ q }}"
      pt = evaluate choice ptrue (options: [" (A)", " (B)"], positive: " (A)")
      rt = evaluate rating rate (scale: 9)
      lk = evaluate likelihood ctx (of: "two words")
      lr = evaluate likelihood ctx (of: "two words", normalize: false)
      cr = evaluate critique crit (pass: /looks correct/, fail: /wrong/)
      return answer: pt.label, score: pt.score, rating: rt.score, lik: lk.score, raw: lr.score, verdict: cr.label
    }"""

    def scores(prompt: str, continuation: str) -> float:
        table = {" (A)": math.log(0.6), " (B)": math.log(0.2), "two words": -2.0}
        if continuation in table:
            return table[continuation]
        return math.log(0.5) if continuation in ("8", "9") else math.log(1e-6)

    result = run_source(source, ScriptedBackend(["It looks correct."], scores=scores), q="x")
    assert result.answer == "(A)" and result.score == pytest.approx(0.75)
    assert result.outputs["rating"] == pytest.approx((8 * 0.5 + 9 * 0.5) / 9, abs=1e-4)
    assert result.outputs["lik"] == pytest.approx(math.exp(-1.0))  # mean over 2 tokens
    assert result.outputs["raw"] == pytest.approx(math.exp(-2.0))
    assert result.outputs["verdict"] == "pass"


def test_branch_expressions() -> None:
    source = """recipe r(x: int) {
      if x * 2 > 10 and not (x == 7) { label = "big" } else if x % 2 == 0 { label = "even" } else { label = "odd" }
      return label
    }"""
    assert [run_source(source, ScriptedBackend([]), x=v).answer for v in (8, 7, 4, 3)] == ["big", "odd", "even", "odd"]


REFINE = """recipe r(q: str, rounds: int = 3) -> (answer, score, first, seen) {
  prompt draft_p = "Draft {{ q }}"
  prompt critic = "Critique {{ current }} round {{ round }}"
  prompt rewrite = "Rewrite {{ current }} after {% for h in history %}[{{ h.fb.text }}]{% endfor %}{{ fb.text }}"
  d = generate draft_p
  best = refine d as current (max: rounds, keep: "best") {
    fb = evaluate critique critic (pass: /CORRECT/, fail: /WRONG/)
    rating = extract number from fb.text
    score rating
    stop when fb.label == "pass"
    next generate rewrite
  }
  return answer: best.value, score: best.score, first: best.first, seen: best.rounds
}"""


def test_refine_stops_when_the_critique_passes() -> None:
    backend = ScriptedBackend({"Draft": "v0", "Critique v0": "WRONG 3", "Rewrite v0": "v1", "Critique v1": "CORRECT 9"})
    result = run_source(REFINE, backend, q="q")
    assert result.answer == "v1" and result.outputs["first"] == "v0" and result.outputs["seen"] == 2
    assert result.score == 9  # the round that stops is scored too
    rewrite = next(r for r in backend.requests if r.prompt.canonical().startswith("Rewrite"))
    assert "WRONG 3" in rewrite.prompt.canonical()  # feedback reaches the rewrite prompt


def test_refine_runs_to_its_bound_and_keeps_the_best() -> None:
    replies = {"Draft": "v0", "Critique v0": "WRONG 2", "Rewrite v0": "v1", "Critique v1": "WRONG 8",
               "Rewrite v1": "v2", "Critique v2": "WRONG 5", "Rewrite v2": "v3"}
    backend = ScriptedBackend(replies)
    result = run_source(REFINE, backend, q="q")
    assert result.outputs["seen"] == 3 and result.answer == "v1" and result.score == 8
    critiques = [r for r in backend.requests if r.prompt.canonical().startswith("Critique")]
    assert len(critiques) == 3
    history_prompt = next(r for r in backend.requests if r.prompt.canonical().startswith("Rewrite v2"))
    assert "[WRONG 2][WRONG 8]WRONG 5" in history_prompt.prompt.canonical()
    assert result.cost.calls <= result.bound["calls"] == 1 + 3 * 2


def test_weighted_and_llm_votes() -> None:
    source = """recipe r() -> (answer, score, usc) {
      prompt p = "solve"
      s = generate p (n: 3, logprobs: true)
      a = extract number from s
      w = vote a by weighted (weights: [0.1, 0.2, 0.9])
      u = vote s by llm
      return answer: w.answer, score: w.share, usc: u.answer
    }"""
    backend = ScriptedBackend(["1", "1", "2", "The most consistent response is Response 2"],
                              scores=lambda p, c: -1.0)
    result = run_source(source, backend)
    assert result.answer == 2 and result.score == pytest.approx(0.9 / 1.2)
    assert result.outputs["usc"] == "2"
    assert "Response 1: 1" in backend.requests[-1].prompt.canonical()


def test_vote_times_stops_early_and_cancels_unneeded_runs() -> None:
    source = """recipe one(q: str) { prompt p = "{{ q }}"  x = generate p  a = extract number from x  return a }
    recipe r(q: str) {
      v = vote 5 times by majority (stop: "unbeatable") { yield call one(q: q) }
      return answer: v.answer, score: v.share
    }"""

    started = []

    async def reply(prompt: str, i: int) -> str:
        started.append(prompt)
        await asyncio.sleep(0.01 if len(started) <= 3 else 5.0)
        return "7"

    backend = ScriptedBackend(reply)
    result = run_source(source, backend, recipe="r", q="fast")
    assert result.answer == 7 and result.cost.calls == 3  # the 3 first votes are unbeatable
    assert len(backend.requests) == 5  # all five started; two were cancelled mid-flight


def test_map_runs_items_concurrently_with_limit() -> None:
    source = """recipe r(items: list[str]) {
      prompt p = "Explain {{ c }}"
      out = map c in items with (limit: 3) { e = generate p  yield e.text }
      return answer: join(out, "|")
    }"""
    backend = ScriptedBackend(lambda prompt, i: prompt.upper(), latency=0.05)
    result = run_source(source, backend, items=["a", "b", "c", "d"])
    assert result.answer == "EXPLAIN A|EXPLAIN B|EXPLAIN C"
    assert backend.max_in_flight == 3


def test_independent_steps_run_concurrently() -> None:
    source = """recipe r() { prompt p = "x"  a = generate p  b = generate p  c = generate p
      return answer: a + b + c }"""
    backend = ScriptedBackend(["1", "2", "3"], latency=0.05)
    run_source(source, backend)
    assert backend.max_in_flight == 3


def test_deepen_appends_trigger_and_grows_budget() -> None:
    source = """recipe r() {
      prompt p = "Solve:"
      d = deepen p (budget: 2, gamma: 2.0, max_total: 8, trigger: "Wait, re-check.", done: /DONE/)
      return answer: d.text, score: d.rounds
    }"""
    backend = ScriptedBackend(["a b c", "d e f g h", "DONE"])
    result = run_source(source, backend)
    budgets = [r.max_tokens for r in backend.requests]
    assert budgets == [2, 4, 2]
    assert result.answer == "a b Wait, re-check. d e f g Wait, re-check. DONE" and result.score == 3
    assert "Wait, re-check." in backend.requests[1].prompt.text


def test_calls_between_recipes_and_imports(tmp_path: Path) -> None:
    (tmp_path / "lib.sf").write_text('recipe shout(q: str) -> (answer, loud) { prompt p = "{{ q }}"  '
                                     'x = generate p  return answer: x, loud: true }')
    (tmp_path / "main.sf").write_text('import "lib.sf" as lib\nrecipe main(q: str) {\n'
                                      '  r = call lib.shout(q: q + "!")\n  return answer: r.answer, score: 1 }')
    backend = ScriptedBackend({"hey!": "HEY"})
    assert sfdsl.load(tmp_path / "main.sf").recipe().run(q="hey", backend=backend).answer == "HEY"


def test_beam_search_keeps_beam_states_per_level() -> None:
    source = """recipe r() {
      prompt propose = "Next after [{{ state }}]"
      t = search beam from "" with (depth: 2, beam: 2) {
        expand { yield generate propose (n: 3) }
        value { yield len(state) }
      }
      return answer: t.best, score: t.nodes
    }"""
    backend = ScriptedBackend(lambda prompt, i: "x" * (i + 1))
    result = run_source(source, backend)
    expansions = [r for r in backend.requests if r.prompt.text.startswith("Next")]
    assert len(expansions) == 1 + 2  # root, then exactly the 2 kept states
    assert result.answer == "xxx\nxxx" and result.score == 1 + 3 + 6


def test_mcts_respects_its_simulation_budget() -> None:
    source = """recipe r() {
      prompt propose = "Next after [{{ state }}]"
      t = search mcts from "" with (simulations: 4, depth: 5, c: 1.0) {
        expand { yield generate propose (n: 2) }
        value { yield 0.5 }
      }
      return answer: t.best, score: t.simulations
    }"""
    backend = ScriptedBackend(lambda prompt, i: f"s{i}")
    result = run_source(source, backend)
    assert len(backend.requests) == 4 == result.score
    assert result.cost.calls <= result.bound["calls"]


def test_budget_on_calls_carries_the_partial_result() -> None:
    source = """recipe r() { prompt p = "x"  a = generate p  b = generate p (max_tokens: 3)  return answer: b }"""
    program = sfdsl.compile(source)
    with pytest.raises(BudgetExceeded) as info:
        program.recipe().run(backend=ScriptedBackend(["1", "2"]), budget=Budget(max_calls=1))
    assert info.value.partial["cost"]["calls"] == 1


def test_budget_on_tokens_and_wall_clock() -> None:
    program = sfdsl.compile('recipe r() { prompt p = "x"  prompt q = "{{ a }}"  a = generate p  b = generate q '
                            ' return answer: a + b }')
    with pytest.raises(BudgetExceeded, match="token budget exhausted") as info:
        program.recipe().run(backend=ScriptedBackend(["one two three", "four"]), budget=Budget(max_tokens=2))
    assert info.value.partial["cost"]["calls"] == 1 and info.value.partial["cost"]["completion_tokens"] == 2
    with pytest.raises(BudgetExceeded, match="wall-clock"):
        program.recipe().run(backend=ScriptedBackend(["x"], latency=2.0), budget=Budget(timeout_s=0.1))


def test_script_exhaustion_is_a_clear_backend_error() -> None:
    with pytest.raises(ScriptExhausted, match="no reply left"):
        source = 'recipe r() { prompt p = "x"  a = generate p  b = generate p (max_tokens: 2)  return answer: a + b }'
        run_source(source, ScriptedBackend(["only one"]))


def test_wrong_inputs_are_reported_by_name() -> None:
    recipe = sfdsl.compile(SC).recipe()
    with pytest.raises(InputError, match="needs input 'question'"):
        recipe.run(backend=ScriptedBackend([]))
    with pytest.raises(InputError, match="did you mean 'question'"):
        recipe.run({"questoin": "x"}, backend=ScriptedBackend([]))
    with pytest.raises(InputError, match="must be int"):
        recipe.run({"question": "x", "n": "many"}, backend=ScriptedBackend([]))


def test_result_records_steps_and_trace(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trace = tmp_path / "trace.jsonl"
    with caplog.at_level(logging.DEBUG, logger="sfdsl"):
        result = sfdsl.compile(SC).recipe().run({"question": "q", "n": 2}, backend=ScriptedBackend(
            ["The answer is 1", "The answer is 1"]), trace=trace)
    traced = [json.loads(line)["event"] for line in trace.read_text().splitlines()]
    assert traced[0] == "run_started" and traced[-1] == "run_finished"
    assert {"node_started", "node_finished", "backend_called"} <= set(traced)
    logs = events(caplog)
    assert {e["event"] for e in logs} >= {"run_started", "node_finished", "backend_called"}
    assert all(e["run_id"] == result.run_id for e in logs)
    kinds = [s.kind for s in result.steps]
    assert kinds == ["generate", "extract", "return:vote"]
    assert result.steps[0].cost.calls == 1 and result.steps[1].output == [1, 1]


def test_arun_works_inside_a_running_event_loop_and_run_refuses_to_block_it() -> None:
    recipe = sfdsl.compile(SC).recipe()

    async def agent() -> object:
        a = await recipe.arun({"question": "q", "n": 1}, backend=ScriptedBackend(["The answer is 3"]))
        with pytest.raises(sfdsl.EventLoopError, match=r"await recipe\.arun") as refused:
            recipe.run({"question": "q", "n": 1}, backend=ScriptedBackend(["The answer is 4"]))
        assert isinstance(refused.value, RuntimeError)
        return a.answer

    assert asyncio.run(agent()) == 3


def test_calls_into_a_file_imported_without_alias(tmp_path: Path) -> None:
    (tmp_path / "lib.sf").write_text('recipe helper(q: str) { return q }')
    (tmp_path / "main.sf").write_text('import "lib.sf"\nrecipe main(q: str) { r = call helper(q: q)  '
                                      'return answer: r.answer }')
    assert sfdsl.load(tmp_path / "main.sf").recipe().run(q="hi", backend=ScriptedBackend([])).answer == "hi"
