"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest

from sfdsl.eval.metrics import (
    bootstrap_ci,
    brier,
    compare,
    confidence_critique,
    ece,
    match_contains,
    match_exact,
    match_numeric,
    match_regex,
    pareto_front,
    parse_number,
    reliability_bins,
    risk_coverage,
    summarize,
    transition_table,
)
from sfdsl.eval.store import ItemRecord


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        ("  Paris. ", "paris", True),
        ("Yes", "yes", True),
        ("yes sir", "yes", False),
        (None, "x", False),
        (42, "42", True),
    ],
)
def test_exact(pred: object, gold: object, ok: bool) -> None:
    assert match_exact(pred, gold) is ok


@pytest.mark.parametrize(
    ("pred", "gold", "ok"),
    [
        ("The answer is 1,234.", 1234, True),
        ("so x = -2.5e1", "-25", True),
        ("3/4", "0.75", True),
        (4, "4.0000001", True),
        (4, "4.001", False),
        ("0.0", 0, True),
        ("no number", "1", False),
        (None, 1, False),
        ("first 7 then 8", 8, True),
    ],
)
def test_numeric(pred: object, gold: object, ok: bool) -> None:
    assert match_numeric(pred, gold) is ok


def test_parse_number_edge_cases() -> None:
    assert parse_number(True) is None
    assert parse_number("e5 then 42") == 42.0
    assert parse_number("1/0") is None


def test_regex_and_contains() -> None:
    assert match_regex("The capital is Paris.", r"\bparis\b")
    assert not match_regex("Parisian", r"^paris$")
    assert not match_regex(None, ".*")
    assert match_contains("I think the answer is YES.", "yes")
    assert not match_contains("no", "yes")
    assert not match_contains("anything", "")


def test_risk_coverage_and_aurc_hand_computed() -> None:
    # sorted by confidence: right, wrong, right, wrong -> risks 0, 1/2, 1/3, 2/4
    points, area = risk_coverage([0.9, 0.8, 0.7, 0.6], [True, False, True, False])
    assert points == [(0.25, 0.0), (0.5, 0.5), (0.75, pytest.approx(1 / 3)), (1.0, 0.5)]
    assert area == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    # a tie block (right, wrong) in random order: position 1 has expected risk 1/2, position 2 risk 1/2
    points, area = risk_coverage([0.9, 0.9, 0.7, 0.6], [True, False, True, False])
    assert points[0] == (0.5, 0.5)
    assert area == pytest.approx((0.5 + 0.5 + 1 / 3 + 0.5) / 4)
    # one error in a block of three below a right answer: E[risk] at k=2 is (0 + 1/3)/2, at k=3 (0 + 2/3)/3, ...
    _, area = risk_coverage([0.9, 0.5, 0.5, 0.5], [True, True, False, True])
    assert area == pytest.approx((0 + (1 / 3) / 2 + (2 / 3) / 3 + 1 / 4) / 4)
    assert risk_coverage([], []) == ([], pytest.approx(math.nan, nan_ok=True))


def _aurc_over_orderings(confidence: list[float], correct: list[bool]) -> float:
    """The mean plain AURC over every ordering of each tie block: the reference for random tie-breaking."""
    from itertools import permutations, product

    levels = sorted(set(confidence), reverse=True)
    blocks = [[ok for c, ok in zip(confidence, correct, strict=True) if c == level] for level in levels]
    total, count = 0.0, 0
    for orders in product(*(set(permutations(block)) for block in blocks)):
        flat = [ok for block in orders for ok in block]
        errors, area = 0, 0.0
        for k, ok in enumerate(flat, start=1):
            errors += 0 if ok else 1
            area += errors / k
        # each distinct ordering of a block is equally likely when the multiset's permutations are weighted
        weight = 1
        for block in orders:
            weight *= math.factorial(sum(block)) * math.factorial(len(block) - sum(block))
        total += weight * area / len(flat)
        count += weight
    return total / count


@pytest.mark.parametrize("confidence, correct", [
    ([0.8, 0.8, 0.8, 0.4, 0.4, 0.2], [True, False, False, True, False, True]),   # vote shares with ties
    ([1.0, 0.5, 0.5, 0.5, 0.0, 0.0], [True, True, False, False, True, False]),   # critique scores {0, .5, 1}
    ([0.91, 0.72, 0.55, 0.31, 0.12], [True, False, True, True, False]),           # continuous: no ties
])
def test_aurc_equals_the_random_tie_breaking_expectation(confidence: list[float], correct: list[bool]) -> None:
    assert risk_coverage(confidence, correct)[1] == pytest.approx(_aurc_over_orderings(confidence, correct), abs=1e-12)


def test_ece_brier_hand_computed() -> None:
    conf, ok = [0.9, 0.8, 0.3, 0.2], [True, True, False, True]
    # one item per bin: (|1-.9| + |1-.8| + |0-.3| + |1-.2|) / 4
    assert ece(conf, ok) == pytest.approx((0.1 + 0.2 + 0.3 + 0.8) / 4)
    assert brier(conf, ok) == pytest.approx((0.01 + 0.04 + 0.09 + 0.64) / 4)
    # two items in one bin: |acc 0.5 - conf 0.75| weighted 2/2
    assert ece([0.71, 0.79], [True, False]) == pytest.approx(0.25)
    bins = reliability_bins([1.0, 0.0], [True, False])
    assert [(b["lo"], b["count"]) for b in bins] == [(0.0, 1), (0.9, 1)]


def test_ece_bins_are_right_closed_as_in_guo_et_al() -> None:
    # 0.3 and 0.7 sit on bin edges: they belong to (0.2, 0.3] and (0.6, 0.7], not to the bins above
    bins = reliability_bins([0.3, 0.7, 0.1, 0.0, 0.05], [True, False, True, False, True])
    assert [(b["lo"], b["count"]) for b in bins] == [(0.0, 3), (0.2, 1), (0.6, 1)]
    # with [lo, hi) bins, 0.3 and 0.31 would share a bin; right-closed, they do not: |1-.3| + |0-.31|
    assert ece([0.3, 0.31], [True, False]) == pytest.approx((0.7 + 0.31) / 2)


def test_confidence_critique_one_sample_per_question() -> None:
    table = {
        "q1": [(True, True)],
        "q2": [(True, False)],
        "q3": [(False, True)],
        "q4": [(False, False)],
        "q5": [(True, True)],
    }
    m = confidence_critique(table)
    assert m["acc1"] == pytest.approx(0.6)
    assert m["cl"] == pytest.approx(2 / 3)
    assert m["cs"] == pytest.approx(1 / 2)
    assert m["acc2"] == pytest.approx(0.6 * 2 / 3 + 0.4 * 0.5)
    assert m["rss"] == pytest.approx((0.6 - 0.36) / (2 * 0.6 * 0.4))


def test_confidence_critique_fractional_samples() -> None:
    # q1: P(a)=1/2, P(b|a)=1, P(b|~a)=0 ; q2: P(a)=1/4, P(b|a)=0, P(b|~a)=2/3
    table = {
        "q1": [(True, True), (False, False)],
        "q2": [(True, False), (False, True), (False, True), (False, False)],
    }
    m = confidence_critique(table)
    assert m["acc1"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["cl"] == pytest.approx((0.5 * 1 + 0.25 * 0) / 0.75)
    assert m["cs"] == pytest.approx((0.5 * 0 + 0.75 * 2 / 3) / 1.25)
    # Acc2 from the formula equals the observed mean second-turn accuracy per question
    assert m["acc2"] == pytest.approx((0.5 + 0.5) / 2)


def test_confidence_critique_guards_division_by_zero() -> None:
    m = confidence_critique({"q1": [(True, True)], "q2": [(True, False)]})
    assert m["acc1"] == 1.0 and m["cs"] is None and m["rss"] is None
    assert m["acc2"] == pytest.approx(0.5)
    assert confidence_critique({})["acc1"] is None


def test_transition_table() -> None:
    t = transition_table([(True, True), (True, False), (False, True), (False, True)])
    assert t == {"right->right": 1, "right->wrong": 1, "wrong->right": 2, "wrong->wrong": 0}


def test_bootstrap_ci_deterministic_with_seed() -> None:
    groups = [[float(i % 3 != 0), float(i % 5 != 0)] for i in range(40)]
    a = bootstrap_ci(groups, seed=7, n_boot=500)
    assert a == bootstrap_ci(groups, seed=7, n_boot=500)
    assert a != bootstrap_ci(groups, seed=8, n_boot=2000)
    mean = sum(sum(g) / 2 for g in groups) / 40
    assert 0.0 <= a[0] < mean < a[1] <= 1.0
    assert bootstrap_ci([[1.0]] * 5, seed=0) == (1.0, 1.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def _rec(
    i: int,
    *,
    correct: bool,
    score: float | None = None,
    abstained: bool = False,
    first: bool | None = None,
    tokens: int = 10,
    error: str | None = None,
    sample: int = 0,
) -> ItemRecord:
    return ItemRecord(
        run_key="r",
        item_key=f"k{i}",
        sample=sample,
        item_id=str(i),
        item_index=i,
        recipe="x",
        inputs={},
        gold="g",
        answer="a",
        outputs={},
        correct=correct and not abstained and error is None,
        answer_correct=correct and error is None,
        first_correct=first,
        score=score,
        abstained=abstained,
        calls=2,
        prompt_tokens=tokens - 2,
        completion_tokens=2,
        cached_calls=0,
        wall_s=0.5,
        seed=sample,
        error=error,
        error_kind="BackendError" if error else None,
    )


def test_summarize_selective_calibration_two_turn() -> None:
    recs = [
        _rec(0, correct=True, score=0.9, first=True),
        _rec(1, correct=False, score=0.8, first=True),
        _rec(2, correct=True, score=0.7, first=False),
        _rec(3, correct=False, score=0.2, abstained=True, first=False),
        _rec(4, correct=False, error="boom"),
    ]
    s = summarize(recs, seed=0, n_boot=200)
    assert s["items"] == 5 and s["correct"] == 2 and s["accuracy"] == pytest.approx(0.4)
    assert s["cost"]["tokens_per_item"] == 10 and s["cost"]["tokens_per_correct"] == 25
    assert s["failures"] == {"count": 1, "by_kind": {"BackendError": 1}}
    sel = s["selective"]
    assert sel["coverage"] == pytest.approx(3 / 5) and sel["selective_accuracy"] == pytest.approx(2 / 3)
    assert sel["aurc"] == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert sel["aurc_random"] == pytest.approx(2 / 4)  # the four scored answers, two wrong
    assert s["calibration"]["brier"] == pytest.approx((0.01 + 0.64 + 0.09 + 0.04) / 4)
    assert s["two_turn"]["table"] == {"right->right": 1, "right->wrong": 1, "wrong->right": 1, "wrong->wrong": 1}
    assert "selective" not in summarize([_rec(0, correct=True)], n_boot=10)


def test_aurc_random_is_the_aurc_of_a_score_that_ranks_nothing() -> None:
    right = [True, False, False, True, False, False, False]
    flat = summarize([_rec(i, correct=ok, score=0.5) for i, ok in enumerate(right)], n_boot=10)["selective"]
    assert flat["aurc"] == pytest.approx(flat["aurc_random"]) and flat["aurc_random"] == pytest.approx(5 / 7)
    ranked = summarize([_rec(i, correct=ok, score=float(ok)) for i, ok in enumerate(right)], n_boot=10)["selective"]
    assert ranked["aurc"] < ranked["aurc_random"] == pytest.approx(5 / 7)


def test_calibration_skipped_for_non_probability_scores() -> None:
    s = summarize([_rec(0, correct=True, score=-3.2), _rec(1, correct=False, score=-9.0)], n_boot=10)
    assert "skipped" in s["calibration"]
    assert s["selective"]["aurc"] == pytest.approx((0 + 0.5) / 2)


def test_compare_and_pareto() -> None:
    base = {"accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "cost": {"tokens_per_item": 100.0}}
    better = {"accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "cost": {"tokens_per_item": 400.0}}
    worse = {"accuracy": 0.6, "accuracy_ci": [0.5, 0.7], "cost": {"tokens_per_item": 500.0}}
    rows = compare([("base", base), ("sc", better), ("bad", worse)])
    assert [r["gain"] for r in rows] == pytest.approx([0.0, 0.2, 0.1])
    assert [r["cost_multiple"] for r in rows] == pytest.approx([1.0, 4.0, 5.0])
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["pareto"] for r in rows] == [True, True, False]
    assert pareto_front([(1, 0.5), (1, 0.5)]) == [True, True]


def test_compare_ranks_a_run_without_accuracy_per_cost_last() -> None:
    free = {"accuracy": 0.9, "accuracy_ci": [0.8, 1.0], "cost": {"tokens_per_item": 0.0}}   # e.g. fully cached
    base = {"accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "cost": {"tokens_per_item": 100.0}}
    rows = compare([("base", base), ("free", free)])
    assert rows[1]["acc_per_1k_tokens"] is None
    assert [r["rank"] for r in rows] == [1, 2]


def test_cli_metric_names_match_metrics() -> None:
    from sfdsl.eval.cli import METRIC_NAMES
    from sfdsl.eval.metrics import METRICS

    assert sorted(METRICS) == list(METRIC_NAMES)
