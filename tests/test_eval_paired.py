"""Paired comparison: exact sign-test p-values and paired gains, checked against hand-computed values."""

from __future__ import annotations

import pytest

from sfdsl.eval.metrics import bootstrap_ci, compare
from sfdsl.eval.paired import item_accuracy, paired_gain, paired_gains, sign_test
from sfdsl.eval.store import ItemRecord
from sfdsl.eval.table import comparison_rows, gain_ci_text, wins_text


def _rec(item: str, correct: bool, *, sample: int = 0, key: str | None = None) -> ItemRecord:
    return ItemRecord(
        run_key="r", item_key=key or f"k-{item}", sample=sample, item_id=item, item_index=0, recipe="x",
        inputs={}, gold="1", answer="1" if correct else "2", outputs={}, correct=correct, answer_correct=correct,
        first_correct=None, score=None, abstained=False, calls=1, prompt_tokens=5, completion_tokens=5,
        cached_calls=0, wall_s=0.1, seed=sample,
    )  # fmt: skip


def _run(*correct: bool) -> list[ItemRecord]:
    return [_rec(f"q{i}", ok) for i, ok in enumerate(correct)]


@pytest.mark.parametrize(
    ("wins", "losses", "p"),
    [
        (5, 1, 2 * (1 + 6) / 64),  # n = 6: P(X <= 1) = (C(6,0) + C(6,1)) / 2^6
        (1, 5, 2 * (1 + 6) / 64),  # symmetric
        (10, 0, 2 / 1024),
        (3, 3, 1.0),  # twice the tail is 84/64: capped at 1
        (2, 1, 1.0),  # 2 * (1 + 3) / 8
        (0, 0, 1.0),  # no untied item: no evidence
        (7, 2, 2 * (1 + 9 + 36) / 512),
    ],
)
def test_sign_test_matches_binomial_tails(wins: int, losses: int, p: float) -> None:
    assert sign_test(wins, losses) == pytest.approx(p)


def test_paired_gain_counts_wins_and_losses_item_by_item() -> None:
    base = _run(True, False, False, True, False)
    other = _run(True, True, True, False, False)
    pair = paired_gain(base, other, seed=3)
    assert pair is not None
    assert (pair["items"], pair["wins"], pair["losses"]) == (5, 2, 1)
    assert pair["gain"] == pytest.approx((0 + 1 + 1 - 1 + 0) / 5)
    assert pair["p_value"] == pytest.approx(1.0)
    low, high = pair["gain_ci"]
    assert -1.0 <= low <= pair["gain"] <= high <= 1.0


def test_identical_runs_have_a_zero_width_interval() -> None:
    run = _run(True, False, True)
    pair = paired_gain(run, run)
    assert pair is not None and pair["gain_ci"] == [0.0, 0.0] and pair["p_value"] == 1.0


def test_a_constant_difference_has_a_zero_width_interval() -> None:
    pair = paired_gain(_run(False, False, False, False), _run(True, True, True, True))
    assert pair is not None
    assert pair["gain_ci"] == [1.0, 1.0] and (pair["wins"], pair["losses"]) == (4, 0)
    assert pair["p_value"] == pytest.approx(2 / 16)


def test_the_paired_interval_is_narrower_than_either_accuracy_interval() -> None:
    # 40 items: both right on 20, both wrong on 14, other wins 5 and loses 1. Only the 6 untied items vary
    # the paired gain, so its interval is narrower than either run's accuracy interval.
    pairs = [(True, True)] * 20 + [(False, False)] * 14 + [(False, True)] * 5 + [(True, False)]
    base, other = _run(*(b for b, _ in pairs)), _run(*(o for _, o in pairs))
    pair = paired_gain(base, other, seed=0)
    assert pair is not None
    assert pair["gain"] == pytest.approx(4 / 40)
    assert pair["p_value"] == pytest.approx(2 * (1 + 6) / 64)
    width = pair["gain_ci"][1] - pair["gain_ci"][0]
    for run in (base, other):
        low, high = bootstrap_ci([[float(r.correct)] for r in run], seed=0)
        assert width < high - low


def test_samples_are_averaged_per_item_and_items_pair_by_id() -> None:
    # q0 has two samples (one right): accuracy 0.5. The other run fixed different inputs, so its content keys
    # differ, but it pairs on the same data set ids; q9 exists in one run only and is left out.
    base = [_rec("q0", True), _rec("q0", False, sample=1), _rec("q1", False), _rec("q9", True)]
    other = [_rec("q0", True, key="other-0"), _rec("q0", True, sample=1, key="other-0"), _rec("q1", False, key="o1")]
    assert item_accuracy(base) == {"q0": 0.5, "q1": 0.0, "q9": 1.0}
    pair = paired_gain(base, other)
    assert pair is not None
    assert (pair["items"], pair["wins"], pair["losses"]) == (2, 1, 0)
    assert pair["gain"] == pytest.approx((0.5 + 0.0) / 2)
    assert paired_gain(base, [_rec("elsewhere", True)]) is None


def test_compare_reports_the_pairing_against_the_baseline() -> None:
    runs = {"base": _run(True, False, False), "better": _run(True, True, True), "same": _run(True, False, False)}
    summaries = [
        (label, {"accuracy": sum(r.correct for r in recs) / 3, "accuracy_ci": [0.0, 1.0],
                 "cost": {"tokens_per_item": 10.0}})
        for label, recs in runs.items()
    ]  # fmt: skip
    rows = compare(summaries, paired_gains(runs, list(runs)))
    assert rows[0]["gain_ci"] is None and rows[0]["wins"] is None
    assert (rows[1]["wins"], rows[1]["losses"]) == (2, 0)
    assert rows[1]["p_value"] == pytest.approx(2 / 4)
    assert rows[2]["gain_ci"] == [0.0, 0.0]
    shown = comparison_rows(rows)
    assert shown[1][5] == gain_ci_text(rows[1]["gain_ci"]) and shown[1][6] == "2/0 (p=0.5)"
    assert shown[0][5] == shown[0][6] == "–"
    assert "gain_ci" not in compare(summaries)[1]  # without pairings, the rows are as before


def test_texts() -> None:
    assert gain_ci_text([-0.025, 0.1]) == "[-2.5, +10.0] pts"
    assert gain_ci_text(None) == "–" and gain_ci_text([float("nan"), 0.1]) == "–"
    assert wins_text({"wins": 5, "losses": 1, "p_value": 14 / 64}) == "5/1 (p=0.22)"
    assert wins_text({"wins": None}) == "–"
