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
