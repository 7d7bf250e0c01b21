"""Vote tallies: numeric equality, weights, ties and early-stop decisions."""

from __future__ import annotations

import pytest

from sfdsl.runtime.voting import Tally, vote
from sfdsl.values import NoAnswer


def test_numeric_answers_compare_by_value_and_text_by_normalised_form() -> None:
    assert vote([4, "4.0", 4.0, 5]).share == pytest.approx(0.75)
    assert vote(["Paris", " paris ", "London"]).answer == "Paris"


def test_weights_override_counts() -> None:
    outcome = vote(["a", "a", "b"], weights=[0.1, 0.1, 0.5])
    assert outcome.answer == "b" and outcome.share == pytest.approx(0.5 / 0.7)


def test_all_no_answers_give_no_answer_with_zero_share() -> None:
    outcome = vote([NoAnswer(), NoAnswer()])
    assert isinstance(outcome.answer, NoAnswer) and outcome.share == 0.0 and outcome.total == 2


def test_unbeatable_early_stop() -> None:
    tally = Tally(expected=5)
    for answer in (3, 3):
        tally.add(answer)
        assert not tally.decided(stop="unbeatable", margin=None)
    tally.add(3)
    assert tally.decided(stop="unbeatable", margin=None)  # 3 votes of 5 cannot be overtaken


def test_margin_early_stop_counts_remaining_votes_against_the_leader() -> None:
    tally = Tally(expected=10)
    for answer in (1, 1, 1, 1, 1, 1, 2):
        tally.add(answer)
    assert not tally.decided(stop=None, margin=0.5)  # (6 - 1 - 3) / 10 = 0.2
    tally = Tally(expected=4)
    for answer in (1, 1, 1, 1):
        tally.add(answer)
    assert tally.decided(stop=None, margin=0.5)


def test_share_all_counts_samples_without_an_answer() -> None:
    # 1 answer out of 5 samples: share 1/1 among answering samples, 1/5 over all samples (the example)
    outcome = vote(["7", NoAnswer(), NoAnswer(), NoAnswer(), NoAnswer()])
    assert outcome.share == 1.0 and outcome.share_all == pytest.approx(0.2) and outcome.margin == 1.0
    # 3, 3, 4 and two no-answers: share 2/3, share_all 2/5, margin 2 - 1
    outcome = vote([3, NoAnswer(), 3, 4, NoAnswer()])
    assert outcome.share == pytest.approx(2 / 3) and outcome.share_all == pytest.approx(0.4)
    assert outcome.margin == 1.0 and outcome.votes == 3 and outcome.total == 5


def test_weighted_share_all_and_margin() -> None:
    # weights a: 0.5 + 0.25, b: 0.5, no answer: 0.25; share .75/1.25, share_all .75/1.5, margin .25
    outcome = vote(["a", "b", NoAnswer(), "a"], weights=[0.5, 0.5, 0.25, 0.25])
    assert outcome.answer == "a" and outcome.share == pytest.approx(0.6)
    assert outcome.share_all == pytest.approx(0.5) and outcome.margin == pytest.approx(0.25)


def test_no_votes_have_zero_share_all_and_margin() -> None:
    outcome = vote([NoAnswer(), NoAnswer()])
    assert outcome.share_all == 0.0 and outcome.margin == 0.0


def test_share_all_and_margin_are_fields_recipes_can_read() -> None:
    import sfdsl
    from sfdsl import ScriptedBackend

    source = """recipe r() {
      prompt p = "x"
      xs = generate p (n: 4)
      answers = extract number from xs
      v = vote answers by majority
      return answer: v.answer, score: v.share_all, margin: v.margin
    }"""
    result = sfdsl.compile(source).recipe().run(backend=ScriptedBackend(["5", "5", "no", "6"]))
    assert result.answer == 5 and result.score == pytest.approx(0.5) and result.outputs["margin"] == 1.0


def test_an_llm_vote_has_share_all_equal_to_its_share() -> None:
    import sfdsl
    from sfdsl import ScriptedBackend

    source = """recipe r() {
      prompt p = "x"
      xs = generate p (n: 4)
      v = vote xs by llm
      return answer: v.answer, score: v.share_all, margin: v.margin
    }"""
    backend = ScriptedBackend(["a", "b", "c", "d", "The most consistent is Response 2."])
    result = sfdsl.compile(source).recipe().run(backend=backend)
    assert result.answer == "c" and result.score == pytest.approx(0.25) and result.outputs["margin"] == 0.0
