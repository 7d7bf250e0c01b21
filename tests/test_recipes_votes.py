"""Scripted control flow of the answer and vote recipes: chain_of_thought, confidence_critique,
self_consistency (plain and weighted), universal_self_consistency, iterative_deepening, self_check.

Vote ties: the answer that reached the tied count first wins (for the answers
4, 3, 3, 4 that is 3: it had two votes before 4 did).
"""

from __future__ import annotations

import math

import pytest
from scripted_recipes import Q, assistant_prefill, generations, run

from sfdsl import ScriptedBackend


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
