"""Scripted control flow of the selection and search recipes: best_of_n (and its judge variant),
tree_of_thoughts, mcts, semantic_entropy.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import pytest
from scripted_recipes import RECIPES, Q, assistant_prefill, generations, run, scorings

import sfdsl
from sfdsl import ScriptedBackend


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
