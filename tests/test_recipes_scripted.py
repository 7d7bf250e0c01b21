"""The control flow of every recipe in recipes/, on the scripted backend.

Each test scripts the model so that a wrong control flow (wrong vote, a loop
that stops too early or too late, a search that keeps the wrong states)
changes the asserted result. Every run also checks that its cost stayed within
the recipe's static bound.

Vote ties: the answer that reached the tied count first wins (for the answers
4, 3, 3, 4 that is 3: it had two votes before 4 did).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.runtime.backends.base import GenerateRequest, ScoreRequest
from sfdsl.runtime.results import RunResult

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
Q = "Kofi has 16 shells. They double their shells. How many shells does Kofi have now?"


def run(name: str, backend: ScriptedBackend, recipe: str | None = None, **inputs: Any) -> RunResult:
    """Run a library recipe on a scripted backend and check its cost against its static bound."""
    result = sfdsl.load(RECIPES / f"{name}.sf").recipe(recipe).run({"question": Q, **inputs}, backend=backend)
    assert result.bound is not None
    assert 0 < result.cost.calls <= result.bound["calls"]
    assert result.cost.completion_tokens <= result.bound["tokens"]
    return result


def generations(backend: ScriptedBackend) -> list[GenerateRequest]:
    return [r for r in backend.requests if isinstance(r, GenerateRequest)]


def scorings(backend: ScriptedBackend) -> list[ScoreRequest]:
    return [r for r in backend.requests if isinstance(r, ScoreRequest)]


def choice(p_first: float) -> Any:
    """A scores function making the first option (" (A)", " sure", ...) have probability ``p_first``."""

    def scores(prompt: str, continuation: str) -> float:
        return math.log(p_first) if continuation in (" (A)",) else math.log(1 - p_first)

    return scores


def assistant_prefill(prompt: str) -> str:
    """The text of the last assistant turn of a canonical chat prompt."""
    return prompt.rsplit("<assistant>", 1)[1] if "<assistant>" in prompt else ""


# ---------------------------------------------------------------- single answers


def test_chain_of_thought_is_one_greedy_sample_with_the_shared_extraction() -> None:
    backend = ScriptedBackend(["16 doubled is 32. The answer is **32**."])
    result = run("chain_of_thought", backend)
    assert result.answer == "32" and result.outputs["response"].endswith("**32**.")
    [request] = generations(backend)
    assert request.temperature == 0 and request.n == 1
    assert run("chain_of_thought", ScriptedBackend(["I am not sure."])).answer is None
    assert run("chain_of_thought", ScriptedBackend(["The answer is X."])).answer is None  # a parroted placeholder
    assert run("chain_of_thought", ScriptedBackend(["Cairo is. The answer is: Yes"])).answer == "yes"


def test_confidence_critique_asks_again_with_the_first_answer_in_context() -> None:
    backend = ScriptedBackend(["I think the answer is 30.", "Let me redo it: the answer is 32."])
    result = run("confidence_critique", backend)
    assert result.outputs["first"] == "30" and result.answer == "32"
    first, second = [r.prompt for r in generations(backend)]
    assert second.messages is not None and [m.role for m in second.messages] == ["user", "assistant", "user"]
    assert second.messages[1].content == "I think the answer is 30."
    assert second.messages[2].content == first.messages[0].content  # the same question again


# ---------------------------------------------------------------- votes


@pytest.mark.parametrize(
    ("replies", "winner", "share"),
    [
        (["The answer is 4", "The answer is 3", "The answer is 3", "no idea", "The answer is 3"], "3", 1.0 * 3 / 4),
        # a tie: 3 reached two votes (sample 3) before 4 did (sample 4), though 4 came first
        (["The answer is 4", "The answer is 3", "The answer is 3", "The answer is 4", "nothing"], "3", 0.5),
        (["The answer is 4", "The answer is 3", "The answer is 4", "The answer is 3", "nothing"], "4", 0.5),
    ],
)
def test_self_consistency_majority_and_tie_rule(replies: list[str], winner: str, share: float) -> None:
    backend = ScriptedBackend(replies)
    result = run("self_consistency", backend)
    assert result.answer == winner and result.score == pytest.approx(share)
    assert result.outputs["votes"] == sum("answer is" in r for r in replies)
    [request] = generations(backend)  # all n samples in one batched request
    assert request.n == 5 and request.temperature == 0.7


def test_self_consistency_weighted_lets_confident_samples_outvote_many() -> None:
    replies = ["The answer is 7", "The answer is 7", "The answer is 9", "x", "y"]

    def scores(prompt: str, text: str) -> float:  # total logprob: "9" is far more probable per token
        return -0.1 * len(text.split()) if "9" in text else -3.0 * len(text.split())

    majority = run("self_consistency", ScriptedBackend(list(replies)))
    weighted = run("self_consistency", ScriptedBackend(list(replies), scores=scores), "self_consistency_weighted")
    assert majority.answer == "7"
    assert weighted.answer == "9"
    assert weighted.score == pytest.approx(math.exp(-0.1) / (math.exp(-0.1) + 2 * math.exp(-3.0)))


def test_universal_self_consistency_returns_the_selected_response() -> None:
    samples = ["so the answer is 30", "the answer is 32", "the answer is 32 shells", "hmm", "the answer is 30"]

    def reply(prompt: str, i: int) -> str:
        return "The most consistent response is Response 2." if "most consistent" in prompt else samples[i]

    backend = ScriptedBackend(reply)
    result = run("universal_self_consistency", backend)
    assert result.outputs["response"] == "the answer is 32 shells" and result.answer == "32"
    assert result.score == pytest.approx(2 / 5)  # samples 1 and 2 agree with the selection
    select = generations(backend)[-1].prompt.canonical()
    assert "Response 4: the answer is 30" in select and Q in select


def test_iterative_deepening_rechecks_unfinished_samples_with_a_larger_budget() -> None:
    def reply(prompt: str, i: int) -> str:
        if "Wait, let me re-check." in prompt:
            return "so the answer is 32"
        return "one two three four five six" if i == 0 else "The answer is 32"

    backend = ScriptedBackend(reply)
    result = run("iterative_deepening", backend, n=2, budget=4, gamma=2.0, max_total=12)
    assert result.answer == "32" and result.score == 1.0 and result.outputs["votes"] == 2
    first, again = generations(backend)
    assert (first.n, first.max_tokens) == (2, 4)  # one batched first round
    assert again.max_tokens == 8 and assistant_prefill(again.prompt.canonical()).startswith("one two three four")


def self_check_script(solutions: list[str], verdicts: dict[str, str]) -> ScriptedBackend:
    """Samples in order; a critique's reply is looked up by the answer in the solution it critiques."""

    def reply(prompt: str, i: int) -> str:
        if "Critique the solution" in prompt:
            solution = prompt.split("Solution:\n")[1].split("\n\nCritique")[0]
            return verdicts.get(solution, "Judgment: correct")
        return solutions[i]

    return ScriptedBackend(reply)


UNCERTAIN = ["The answer is 30", "The answer is 30", "The answer is 32", "The answer is 31"]  # margin 2 - 1 = 1
NO, YES, UNSURE = "Judgment: incorrect", "Judgment: correct", "It may be fine."


def critiques(backend: ScriptedBackend) -> int:
    return sum("Critique the solution" in r.prompt.canonical() for r in generations(backend))


def test_self_check_drops_rejected_samples_when_uncertain() -> None:
    backend = self_check_script(UNCERTAIN, {UNCERTAIN[0]: NO, UNCERTAIN[3]: NO})
    result = run("self_check", backend, k=4)  # margin 1 < C = 2: checked
    assert critiques(backend) == 4 and result.outputs["checked"] is True
    assert result.answer == "32" and result.outputs["kept"] == 1 and result.score == 1.0
    nobody = run("self_check", self_check_script(UNCERTAIN, {}), k=4)
    assert nobody.answer == "30" and nobody.outputs["kept"] == 4 and nobody.score == 0.5


def test_self_check_falls_back_to_all_samples_when_none_is_accepted() -> None:
    everyone = run("self_check", self_check_script(UNCERTAIN, dict.fromkeys(UNCERTAIN, NO)), k=4)
    assert everyone.answer == "30" and everyone.outputs["kept"] == 0 and everyone.score == 0.5  # 2 of 4
    # accepted samples without an answer do not vote: the fallback, not a rejected answer with share 0
    solutions = ["I am not sure.", "The answer is 30", "The answer is 31", "Hmm."]
    verdicts = {solutions[1]: NO, solutions[2]: NO}
    result = run("self_check", self_check_script(solutions, verdicts), k=4)
    assert result.outputs["kept"] == 2 and result.answer == "30" and result.score == 0.5  # 30 reached 1 first


def test_self_check_skips_the_critiques_when_certain() -> None:
    certain = ["The answer is 30", "The answer is 30", "The answer is 30", "The answer is 31"]  # margin 3 - 1 = 2
    backend = self_check_script(certain, dict.fromkeys(certain, NO))
    result = run("self_check", backend, k=4)
    assert critiques(backend) == 0 and result.outputs["checked"] is False
    assert result.answer == "30" and result.score == 0.75 and result.outputs["kept"] == 4
    backend = self_check_script(certain, {certain[3]: NO})
    result = run("self_check", backend, k=4, certainty_threshold=3)  # 2 < 3: checked, 31 rejected
    assert critiques(backend) == 4 and result.answer == "30" and result.score == 1.0 and result.outputs["kept"] == 3


def test_self_check_handles_unclear_verdicts_explicitly() -> None:
    verdicts = {UNCERTAIN[0]: UNSURE, UNCERTAIN[1]: UNSURE, UNCERTAIN[2]: YES, UNCERTAIN[3]: NO}
    kept = run("self_check", self_check_script(UNCERTAIN, verdicts), k=4)
    assert kept.outputs["unclear"] == 2 and kept.outputs["kept"] == 3
    assert kept.answer == "30" and kept.score == pytest.approx(2 / 3)  # unclear samples are kept by default
    dropped = run("self_check", self_check_script(UNCERTAIN, verdicts), k=4, drop_unclear=True)
    assert dropped.outputs["kept"] == 1 and dropped.answer == "32" and dropped.score == 1.0


# ---------------------------------------------------------------- refinement


def refine_script(verdicts: list[str]) -> tuple[ScriptedBackend, dict[str, int]]:
    calls = {"draft": 0, "feedback": 0, "rewrite": 0}

    def reply(prompt: str, i: int) -> str:
        if "Check the solution below" in prompt:
            calls["feedback"] += 1
            return f"Step 2 is off. Verdict: {verdicts[min(calls['feedback'], len(verdicts)) - 1]}"
        if "Write an improved version" in prompt:
            calls["rewrite"] += 1
            return f"Rewrite {calls['rewrite']}: the answer is {30 + calls['rewrite']}"
        calls["draft"] += 1
        return "Draft: the answer is 30"

    return ScriptedBackend(reply), calls


def test_self_refine_stops_when_the_feedback_says_correct() -> None:
    backend, calls = refine_script(["incorrect", "correct"])
    result = run("self_refine", backend)
    assert result.answer == "31" and result.outputs["first"] == "30"
    assert result.outputs["rounds"] == 2 and result.outputs["stopped"] is True
    assert calls == {"draft": 1, "feedback": 2, "rewrite": 1}
    feedback = [r for r in generations(backend) if "Check the solution below" in r.prompt.canonical()]
    assert all(r.temperature == 0.7 for r in feedback)


def test_self_refine_runs_to_its_bound_with_the_whole_history() -> None:
    backend, calls = refine_script(["incorrect"])
    result = run("self_refine", backend)
    assert calls == {"draft": 1, "feedback": 4, "rewrite": 4}
    assert result.outputs["rounds"] == 4 and result.outputs["stopped"] is False
    assert result.answer == "34" and result.outputs["first"] == "30"
    assert result.cost.calls == result.bound["calls"] == 9
    prompts = [r.prompt.canonical() for r in generations(backend)]
    text = [p for p in prompts if "Write an improved version" in p][-1]
    assert text.index("Draft: the answer is 30") < text.index("Rewrite 1:") < text.index("Rewrite 3:")
    assert text.count("Feedback:") == 4  # every earlier solution with its feedback, oldest first


def test_self_refine_prompts_extend_the_one_before_so_the_prefix_cache_can_reuse_them() -> None:
    backend, _ = refine_script(["incorrect"])
    run("self_refine", backend)
    prompts = [r.prompt.canonical() for r in generations(backend)]
    rewrites = [p for p in prompts if "Write an improved version" in p]
    feedback = [p for p in prompts if "Check the solution below" in p]
    assert len(rewrites) == len(feedback) == 4
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(rewrites))
    start = feedback[0][: feedback[0].index("Solution:\n") + len("Solution:\n")]
    assert all(p.startswith(start) for p in feedback)


def test_untargeted_refine_always_runs_every_round() -> None:
    counts = {"critique": 0, "improve": 0}

    def reply(prompt: str, i: int) -> str:
        if "Based on your review" in prompt:
            counts["improve"] += 1
            return f"Improved: the answer is {31 + counts['improve']}"
        if "Review your previous answer" in prompt:
            counts["critique"] += 1
            return "It is correct."  # no stopping test: the loop goes on regardless
        return "the answer is 31"

    result = run("untargeted_refine", ScriptedBackend(reply), rounds=3)
    assert counts == {"critique": 3, "improve": 3}
    assert result.answer == "34" and result.outputs["first"] == "31"


def step_script(steps: list[str], redo: str, bad: str) -> tuple[ScriptedBackend, list[str]]:
    """Steps by position; a step containing ``bad`` gets a low P(True); redoing gives ``redo``."""
    redone: list[str] = []

    def reply(prompt: str, i: int) -> str:
        prefill = assistant_prefill(prompt)
        if "Wait, this step may be wrong" in prefill:
            redone.append(prefill)
            return redo
        if prefill.endswith("The answer is"):
            return " 7"
        done = prefill.count("\n")
        return steps[done] if done < len(steps) else "more"

    def scores(prompt: str, continuation: str) -> float:
        step = re.search(r"New step: (.*)", prompt).group(1)  # type: ignore[union-attr]
        p = 0.1 if bad in step else 0.9
        return math.log(p if continuation == " (A)" else 1 - p)

    return ScriptedBackend(reply, scores=scores), redone


def test_step_correction_redoes_flagged_steps_and_stops_at_the_answer() -> None:
    backend, redone = step_script(["Kofi has 16 shells.", "16 * 2 = 30", "The answer is 32."], "16 * 2 = 32", "= 30")
    result = run("step_correction", backend)
    assert result.answer == "32" and result.outputs["corrections"] == 1
    assert result.outputs["solution"] == "Kofi has 16 shells.\n16 * 2 = 32\nThe answer is 32.\n"
    assert len(redone) == 1 and redone[0].endswith("16 * 2 = 30 Wait, this step may be wrong. Let me redo it.\n")
    stepped = [r for r in generations(backend) if r.stop == ("\n",) and r.temperature == 0]
    assert len(stepped) == 3  # no fourth step once "The answer is" appeared
    assert result.score == pytest.approx((0.9 + 0.1 + 0.9) / 3)


def test_step_correction_caps_steps_and_retries() -> None:
    backend, redone = step_script(["a = 30"] * 10, "still = 30", "= 30")
    result = run("step_correction", backend, max_steps=3, retries=2)
    new_steps = [
        r
        for r in generations(backend)
        if r.temperature == 0
        and r.stop == ("\n",)
        and not assistant_prefill(r.prompt.canonical()).endswith("The answer is")
    ]
    assert len(new_steps) == 3  # max_steps
    assert len(redone) == 3 * 2  # every step redone `retries` times
    assert result.outputs["corrections"] == 3
    assert result.answer == "7"  # completed by the final call
    assert result.cost.calls == result.bound["calls"]


# ---------------------------------------------------------------- self-evaluation and abstention


@pytest.mark.parametrize(("p", "abstains"), [(0.2, True), (0.8, False)])
def test_p_true_abstains_below_threshold(p: float, abstains: bool) -> None:
    backend = ScriptedBackend(["16 times 2. The answer is 32."], scores=choice(p))
    result = run("p_true", backend)
    assert result.abstained is abstains and result.score == pytest.approx(p)
    assert result.answer == "32"  # reported either way
    [proposal] = generations(backend)
    assert proposal.temperature == 1.0 and proposal.n == 1  # sampled at T 1, as in the paper
    [scored] = scorings(backend)
    assert scored.continuations == (" (A)", " (B)")
    text = scored.prompt.canonical()
    assert "Proposed Answer: 16 times 2. The answer is 32.\n" in text  # the whole written answer is judged
    assert text.endswith("The proposed answer is:") and "brainstormed" not in text


def test_p_true_judges_the_extracted_answer_on_request() -> None:
    backend = ScriptedBackend(["16 times 2. The answer is 32."], scores=choice(0.8))
    run("p_true", backend, judge_extracted=True, temperature=0.0)
    assert generations(backend)[0].temperature == 0.0
    assert "Proposed Answer: 32\nIs the proposed answer:" in scorings(backend)[0].prompt.canonical()


def test_p_true_brainstorm_judges_the_first_sample_with_all_samples_shown() -> None:
    def reply(prompt: str, i: int) -> str:
        return f"Adding up. The answer is {30 + i}"

    backend = ScriptedBackend(reply, scores=choice(0.7))
    result = run("p_true", backend, brainstorm=3)
    assert not result.abstained and result.answer == "30"  # the proposal is the first brainstormed sample
    [sampled] = generations(backend)  # one batch: no separate proposal call
    assert sampled.n == 3 and sampled.temperature == 1.0
    text = scorings(backend)[0].prompt.canonical()
    ideas = "".join(f"Adding up. The answer is {30 + i}\n" for i in range(3))
    assert f"Here are some brainstormed ideas:\n{ideas}Proposed Answer: Adding up. The answer is 30\n" in text
    backend = ScriptedBackend(reply, scores=choice(0.7))
    run("p_true", backend, brainstorm=3, judge_extracted=True)
    text = scorings(backend)[0].prompt.canonical()
    assert "Here are some brainstormed ideas:\n30\n31\n32\nProposed Answer: 30\n" in text


@pytest.mark.parametrize(("digit", "abstains"), [(2, True), (8, False)])
def test_self_judge_declines_below_threshold(digit: int, abstains: bool) -> None:
    def scores(prompt: str, continuation: str) -> float:
        return 0.0 if continuation == str(digit) else -30.0

    backend = ScriptedBackend(["Double 16. The answer is 32."], scores=scores)
    result = run("self_judge", backend)
    assert result.abstained is abstains and result.answer == "32"
    assert result.score == pytest.approx(digit / 9, abs=1e-6)
    [scored] = scorings(backend)
    assert scored.continuations == tuple(str(d) for d in range(10))
    assert scored.prompt.canonical().endswith("<assistant>Rating: [[")


def test_self_judge_answers_free_form_with_the_whole_response() -> None:
    backend = ScriptedBackend(["Roses are red."], scores=lambda p, c: 0.0 if c == "9" else -30.0)
    result = run("self_judge", backend)
    assert result.answer == "Roses are red." and not result.abstained


def familiarity_script(known: set[str], listed: str = "Photosynthesis\nChlorophyll") -> ScriptedBackend:
    def reply(prompt: str, i: int) -> str:
        if "List the key concepts" in prompt:
            return listed
        if "Explain in two or three sentences" in prompt:
            concept = re.search(r'what "(.*)" is', prompt).group(1)  # type: ignore[union-attr]
            return f"{concept} is a thing; {concept.lower()} matters in biology."
        return "The answer is yes."

    def scores(prompt: str, continuation: str) -> float:
        assert "___ is a thing; ___ matters" in prompt  # the concept is masked, case-insensitively
        words = len(continuation.split())
        return -0.1 * words if continuation.strip() in known else -5.0 * words

    return ScriptedBackend(reply, scores=scores)


def test_self_familiarity_abstains_naming_the_unfamiliar_concept() -> None:
    result = run("self_familiarity", familiarity_script({"Photosynthesis"}))
    assert result.abstained and result.reason == "unfamiliar concept: Chlorophyll"
    assert result.score == pytest.approx(math.exp(-5.0))
    assert result.outputs["familiarity"] == pytest.approx([math.exp(-0.1), math.exp(-5.0)])


def test_self_familiarity_answers_when_every_concept_is_familiar() -> None:
    backend = familiarity_script({"Photosynthesis", "Chlorophyll", "Leaf"}, "Photosynthesis\nChlorophyll\nLeaf\nSun")
    result = run("self_familiarity", backend, max_concepts=3)
    assert not result.abstained and result.answer == "yes"
    assert result.score == pytest.approx(math.exp(-0.1))
    explained = [r for r in generations(backend) if "Explain" in r.prompt.canonical()]
    assert len(explained) == 3  # the map's limit: "Sun" is not scored


def test_self_familiarity_masks_each_content_word_of_the_concept() -> None:
    def reply(prompt: str, i: int) -> str:
        if "List the key concepts" in prompt:
            return "Light reactions"
        if "Explain in two or three sentences" in prompt:
            return "Light reactions use LIGHT. Each reaction of the light phase makes ATP."
        return "The answer is yes."

    seen: list[str] = []

    def scores(prompt: str, continuation: str) -> float:
        seen.append(prompt)
        return -0.1

    result = run("self_familiarity", ScriptedBackend(reply, scores=scores))
    assert not result.abstained
    [prompt] = seen
    assert "Explanation: ___ use ___. Each ___ of the ___ phase makes ATP.\n" in prompt


# ---------------------------------------------------------------- selection and search


def test_best_of_n_picks_the_most_likely_sample() -> None:
    samples = ["The answer is 30", "so the answer is 32", "The answer is 31"]
    logprob = {samples[0]: -4.0, samples[1]: -0.5, samples[2]: -2.0}
    backend = ScriptedBackend(list(samples), scores=lambda p, c: logprob[c])
    result = run("best_of_n", backend, n=3)
    assert result.answer == "32" and result.outputs["index"] == 1
    assert result.score == pytest.approx(math.exp(-0.5 / 5))
    [scored] = scorings(backend)
    assert scored.continuations == tuple(samples)  # all n in one batch


def test_best_of_n_unnormalised_prefers_what_the_raw_likelihood_prefers() -> None:
    samples = ["The answer is 30", "The answer is 32 because 16 doubled is 32"]
    logprob = {samples[0]: -3.0, samples[1]: -4.0}  # per token the long one is better, in total the short one
    normalised = run("best_of_n", ScriptedBackend(list(samples), scores=lambda p, c: logprob[c]), n=2)
    raw = run("best_of_n", ScriptedBackend(list(samples), scores=lambda p, c: logprob[c]), n=2, normalize=False)
    assert normalised.answer == "32" and raw.answer == "30"


def test_best_of_n_judge_picks_the_highest_p_true() -> None:
    samples = ["The answer is 30", "The answer is 32", "The answer is 31"]
    p = {"30": 0.3, "32": 0.9, "31": 0.6}

    def scores(prompt: str, continuation: str) -> float:
        value = p[re.search(r"answer is (\d+)", prompt).group(1)]  # type: ignore[union-attr]
        return math.log(value if continuation == " (A)" else 1 - value)

    result = run("best_of_n", ScriptedBackend(list(samples), scores=scores), "best_of_n_judge", n=3)
    assert result.answer == "32" and result.score == pytest.approx(0.9) and result.outputs["index"] == 1


VALUES = {"0": " likely", "1": " impossible", "2": " sure"}  # the value of a step by its sample index


def tree_script() -> ScriptedBackend:
    def reply(prompt: str, i: int) -> str:
        prefill = assistant_prefill(prompt)
        if prefill.endswith("The answer is"):
            return " 42"
        level = prefill.count("\n")
        return f"step L{level}-{i}"

    def scores(prompt: str, continuation: str) -> float:
        last = re.findall(r"-(\d)", prompt.split("Partial solution:")[1])[-1]
        return 0.0 if continuation == VALUES[last] else -20.0

    return ScriptedBackend(reply, scores=scores)


def test_tree_of_thoughts_keeps_exactly_beam_states_per_level() -> None:
    backend = tree_script()
    result = run("tree_of_thoughts", backend, k=3, beam=2, depth=3)
    expands = [r for r in generations(backend) if r.n == 3]
    by_level: dict[int, list[str]] = {}
    for r in expands:
        prefill = assistant_prefill(r.prompt.canonical())
        by_level.setdefault(prefill.count("\n"), []).append(prefill)
    assert {level: len(states) for level, states in by_level.items()} == {0: 1, 1: 2, 2: 2}
    # the kept states are the best valued ones: "sure" (index 2) then "likely" (index 0)
    assert sorted(by_level[1]) == ["step L0-0\n", "step L0-2\n"]
    assert sorted(by_level[2]) == ["step L0-0\nstep L1-2\n", "step L0-2\nstep L1-2\n"]  # the two "sure" ones
    assert result.outputs["solution"] == "step L0-2\nstep L1-2\nstep L2-2\nThe answer is 42"
    assert result.answer == "42" and result.score == pytest.approx(1.0, abs=1e-6)
    assert result.outputs["nodes"] == 1 + 3 + 6 + 6


def test_tree_of_thoughts_does_not_expand_finished_states() -> None:
    def reply(prompt: str, i: int) -> str:
        return "The answer is 32." if i == 2 else f"step -{i}"

    def scores(prompt: str, continuation: str) -> float:
        state = prompt.split("Partial solution:")[1]
        return 0.0 if continuation == (" sure" if "answer is" in state else " likely") else -20.0

    backend = ScriptedBackend(reply, scores=scores)
    result = run("tree_of_thoughts", backend, k=3, beam=1, depth=3)
    assert result.answer == "32" and len([r for r in generations(backend) if r.n == 3]) == 1


def mcts_script(values: dict[str, float]) -> ScriptedBackend:
    """Expansions return s1, s2, ... in call order; a state's P(True) is the value of its last step."""
    calls = [0]

    def reply(prompt: str, i: int) -> str:
        if assistant_prefill(prompt).endswith("The answer is"):
            return " 42"
        calls[0] += 1
        return f"s{calls[0]}"

    def scores(prompt: str, continuation: str) -> float:
        state = prompt.split("Partial solution:\n")[1].split("\nIs the partial solution")[0]
        p = values[state.split("\n")[-1]]
        return math.log(max(p if continuation == " (A)" else 1 - p, 1e-12))

    return ScriptedBackend(reply, scores=scores)


def test_mcts_follows_alphallm_one_child_per_simulation_mean_backup_greedy_path() -> None:
    # Hand trace (k = 2 children per node, c = 1, depth 2): sims 1-2 add s1 (0.6) and s2 (0.4) under the root.
    # Sim 3 (N=2): UCT s1 0.6+sqrt(ln 2) = 1.433 > s2 1.233: s1 gets s3 (0.2), s1's mean falls to 0.8/2.
    # Sim 4 (N=3): s1 0.4+sqrt(ln3/2) = 1.141 < s2 0.4+sqrt(ln3) = 1.448: s2 gets s4 (1.0), s2 = 1.4/2.
    # Greedy by mean: s2 (0.7 > 0.4), then s4; no answer yet, so one greedy call completes it.
    backend = mcts_script({"s1": 0.6, "s2": 0.4, "s3": 0.2, "s4": 1.0})
    result = run("mcts", backend, simulations=4, depth=2, k=2)
    expansions = [r for r in generations(backend) if not assistant_prefill(r.prompt.canonical()).endswith("is")]
    assert [assistant_prefill(r.prompt.canonical()) for r in expansions] == ["", "", "s1\n", "s2\n"]
    assert all(r.n == 1 and r.temperature == 0.7 for r in expansions)  # one sampled child per simulation
    assert len(scorings(backend)) == 4  # every new state is valued once
    assert result.outputs["solution"] == "s2\ns4\nThe answer is 42" and result.answer == "42"
    assert result.score == pytest.approx(1.0, abs=1e-6) and result.outputs["simulations"] == 4


@pytest.mark.parametrize("simulations", [1, 3, 6])
def test_mcts_respects_its_simulation_budget(simulations: int) -> None:
    backend = mcts_script(defaultdict(lambda: 0.5))
    result = run("mcts", backend, simulations=simulations, depth=4, k=2)
    assert result.outputs["simulations"] == simulations  # nothing terminal within 6 steps of depth 4, width 2
    assert len(scorings(backend)) == simulations
    assert result.answer == "42"


def test_a_zero_weight_vote_does_not_move_when_a_tie_was_reached() -> None:
    """self_check votes with weight 0 for rejected samples; those must not change who reached a tie first."""
    from sfdsl.runtime.voting import vote

    assert vote(["30", "32", "30"], [1.0, 1.0, 0.0]).answer == "30"  # 30 had its one vote first
    assert vote(["30", "32", "30", "32"], [1.0, 1.0, 1.0, 1.0]).answer == "30"


def _same_number(prompt: str, continuation: str) -> float:
    """The implication judge of semantic_entropy: answers imply each other when they name the same number."""
    first = re.search(r"Possible Answer 1: \D*(\d+)", prompt)
    second = re.search(r"Possible Answer 2: \D*(\d+)", prompt)
    same = bool(first and second and first.group(1) == second.group(1))
    return math.log(0.9 if same == (continuation == " (A)") else 0.1)


def test_semantic_entropy_answers_with_the_largest_meaning() -> None:
    replies = ["So 16 * 2 = 32. The answer is 32.", "The answer is 16.", "Doubling. The answer is indeed 32 shells.",
               "The answer is 32", "The answer is thirty-two... no, 32."]
    backend = ScriptedBackend(replies, scores=_same_number)
    result = run("semantic_entropy", backend)
    entropy = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2))
    assert result.answer == "32" and not result.abstained
    assert result.score == pytest.approx(1 - entropy / math.log(5))
    assert result.outputs["clusters"] == 2
    assert len(scorings(backend)) == 2 + 4 + 4 + 4  # samples 1-4 against 1, 2, 2, 2 representatives, both ways


def test_semantic_entropy_abstains_when_meanings_disagree() -> None:
    replies = ["The answer is 32.", "The answer is 16.", "The answer is 8.", "The answer is 32.", "The answer is 16."]
    result = run("semantic_entropy", ScriptedBackend(replies, scores=_same_number))
    entropy = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    assert result.abstained and "disagree" in (result.reason or "")
    assert result.score == pytest.approx(1 - entropy / math.log(5))


def test_semantic_entropy_abstains_without_any_final_answer() -> None:
    backend = ScriptedBackend(["I am not sure."] * 5, scores=_same_number)
    result = sfdsl.load(RECIPES / "semantic_entropy.sf").recipe().run({"question": Q}, backend=backend)
    assert result.abstained and result.reason == "no sample gave a final answer" and result.score == 0
    assert scorings(backend) == []
