"""Scripted control flow of the self-evaluation recipes: p_true, self_judge, self_familiarity.
"""

from __future__ import annotations

import math
import re

import pytest
from scripted_recipes import choice, generations, run, scorings

from sfdsl import ScriptedBackend


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
