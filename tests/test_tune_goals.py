"""--objective and --constraint: parsing, and what each kind of constraint holds a point to."""

from __future__ import annotations

import pytest

from sfdsl.tune.goals import GoalError, parse_constraint, parse_constraints, parse_objective


def test_objectives() -> None:
    assert parse_objective("accuracy,tokens").field == "tokens_per_item"
    assert parse_objective("accuracy, latency").field == "wall_s_per_item"
    assert parse_objective("accuracy,calls").field == "calls_per_item"
    for bad in ("tokens", "accuracy,dollars", "accuracy,tokens,calls"):
        with pytest.raises(GoalError, match="--objective expects"):
            parse_objective(bad)


def test_mean_constraint_holds_on_the_measured_mean() -> None:
    c = parse_constraint("tokens_per_item<=600")
    assert c.on_mean_cost and not c.on_bound
    assert c.holds(0.5, {"tokens_per_item": 600.0}) and not c.holds(0.5, {"tokens_per_item": 600.5})
    assert not c.bound_exceeds(calls=1, tokens=10_000)  # a worst case says nothing certain about a mean
    assert parse_constraint("latency_per_item<=2").field == "wall_s_per_item"


def test_bound_constraint_holds_on_the_static_worst_case() -> None:
    c = parse_constraint("bound_tokens<=1024")
    assert c.on_bound and c.bound_exceeds(calls=1, tokens=1025) and not c.bound_exceeds(calls=9, tokens=1024)
    assert c.holds(0.1, {}, {"calls": 1, "tokens": 1024}) and not c.holds(0.9, {}, {"calls": 1, "tokens": 2000})
    assert parse_constraint("bound_calls<=4").bound_exceeds(calls=5, tokens=0)


def test_accuracy_constraint() -> None:
    c = parse_constraint("accuracy>=0.8")
    assert c.holds(0.8, {}) and not c.holds(0.79, {})


@pytest.mark.parametrize(("text", "message"), [
    ("tokens<=600", "--constraint expects"),
    ("tokens_per_item>=600", "write tokens_per_item<=X"),
    ("accuracy<=0.5", "write accuracy>=X"),
    ("tokens_per_item<=-1", "a number >= 0"),
    ("accuracy>=", "expects"),
])
def test_bad_constraints(text: str, message: str) -> None:
    with pytest.raises(GoalError, match=message):
        parse_constraint(text)


def test_a_constraint_name_given_twice_is_an_error() -> None:
    with pytest.raises(GoalError, match="given twice"):
        parse_constraints(["tokens_per_item<=5", "tokens_per_item<=6"])
