"""Correctness metrics and evaluation statistics (accuracy CI, cost, selective, calibration, two-turn)."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sfdsl import regexes
from sfdsl.eval.store import ItemRecord

Matcher = Callable[[Any, Any], bool]

_NUMBER = re.compile(r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRACTION = re.compile(r"([-+]?\d+)\s*/\s*(\d+)")
_TRIM = " \t\n\r.!?;:,'\"`"


# ---------------------------------------------------------------- correctness


def normalize(value: Any) -> str:
    """Lower-case, collapse whitespace and strip surrounding punctuation/quotes."""
    if value is None:
        return ""
    return " ".join(str(value).split()).casefold().strip(_TRIM)


def parse_number(value: Any) -> float | None:
    """The number a value stands for: ints/floats as is, else the last number in its text.

    Handles thousands separators (``1,234``), decimals, exponents and simple
    fractions (``3/4``). Returns None when there is no number.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    frac = list(_FRACTION.finditer(text))
    nums = list(_NUMBER.finditer(text))
    if frac and (not nums or frac[-1].end() >= nums[-1].end()):
        num, den = int(frac[-1].group(1)), int(frac[-1].group(2))
        return num / den if den else None
    if not nums:
        return None
    try:
        return float(nums[-1].group().replace(",", ""))
    except ValueError:
        return None


def match_exact(pred: Any, gold: Any) -> bool:
    """Equal after :func:`normalize`; a None prediction never matches."""
    return pred is not None and normalize(pred) == normalize(gold)


def match_numeric(pred: Any, gold: Any) -> bool:
    """Both parse as numbers equal within 1e-6 relative (1e-9 absolute near zero)."""
    p, g = parse_number(pred), parse_number(gold)
    return p is not None and g is not None and math.isclose(p, g, rel_tol=1e-6, abs_tol=1e-9)


def match_regex(pred: Any, gold: Any) -> bool:
    """The gold is a regular expression searched (case-insensitively, by RE2 in linear time) in the stripped
    prediction."""
    if pred is None:
        return False
    return regexes.search(str(gold), str(pred).strip(), "i")


def match_contains(pred: Any, gold: Any) -> bool:
    """The normalised gold occurs in the normalised prediction."""
    g = normalize(gold)
    return pred is not None and bool(g) and g in normalize(pred)


METRICS: dict[str, Matcher] = {
    "exact": match_exact,
    "numeric": match_numeric,
    "regex": match_regex,
    "contains": match_contains,
}


def get_metric(name: str) -> Matcher:
    """Look up a correctness metric by name (``exact``, ``numeric``, ``regex``, ``contains``).

    Raises:
        KeyError: If the name is unknown.
    """
    return METRICS[name]


# ---------------------------------------------------------------- statistics


def bootstrap_ci(
    groups: Sequence[Sequence[float]], *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of per-group means, resampling groups.

    Groups are questions (each with one or more samples), so repeated samples
    of a question are not treated as independent.

    Args:
        groups: Values per group (e.g. 0/1 correctness per sample).
        n_boot: Number of bootstrap resamples.
        alpha: 1 - confidence level.
        seed: RNG seed; the same seed gives the same interval.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for no groups.
    """
    means = np.array([float(np.mean(g)) for g in groups if len(g)], dtype=float)
    if means.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // means.size)
    boots: list[np.ndarray] = []
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        boots.append(means[rng.integers(0, means.size, size=(size, means.size))].mean(axis=1))
    stats = np.concatenate(boots)
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> tuple[list[tuple[float, float]], float]:
    """Risk-coverage curve and its area (AURC), exact under random tie-breaking.

    Items are sorted by confidence, highest first; answering the top ``k``
    gives coverage ``k/n`` and risk = error rate among them. AURC is the mean
    risk over positions ``k = 1..n`` (Geifman et al. 2019).

    Tied confidences carry no order, so the risk at a position inside a block
    of ties is its expectation when the block is ordered at random: with
    ``E`` errors above a block of ``m`` items holding ``e`` errors, position
    ``j`` of the block (``k = above + j``) has expected risk
    ``(E + j * e / m) / k`` (the expected errors among ``j`` items drawn
    without replacement from the block). AURC sums these exactly: no sampling,
    and it equals the plain AURC when no confidences tie.

    Returns:
        ``(points, aurc)`` with one ``(coverage, risk)`` point per distinct
        threshold (the risk at the end of each tie block); ``([], nan)`` for
        no items.

    >>> round(risk_coverage([0.5, 0.5], [True, False])[1], 4)   # (0.5 + 0.5) / 2
    0.5
    >>> round(risk_coverage([0.9, 0.5], [True, False])[1], 4)   # (0 + 0.5) / 2
    0.25
    """
    n = len(confidence)
    if n == 0:
        return [], math.nan
    order = sorted(range(n), key=lambda i: -confidence[i])
    points: list[tuple[float, float]] = []
    area, errors_above, k = 0.0, 0, 0
    while k < n:
        j = k
        while j < n and confidence[order[j]] == confidence[order[k]]:
            j += 1
        block = j - k
        block_errors = sum(0 if correct[order[i]] else 1 for i in range(k, j))
        for pos in range(1, block + 1):
            area += (errors_above + pos * block_errors / block) / (k + pos)
        errors_above += block_errors
        points.append((j / n, errors_above / j))
        k = j
    return points, area / n


def _bin_index(c: float, n_bins: int) -> int:
    """The (lo, hi] bin of confidence ``c``; the first bin is [0, hi]."""
    b = min(max(math.ceil(c * n_bins) - 1, 0), n_bins - 1)
    if b > 0 and c <= b / n_bins:  # c * n_bins rounded up past an edge (e.g. 0.3 * 10)
        b -= 1
    return b


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width confidence bins (lo, hi] on [0, 1], the first closed ([0, hi]); empty bins are omitted.

    The right-closed bins follow Guo et al. 2017 ("On Calibration of Modern
    Neural Networks", Section 2): a confidence of exactly
    0.3 falls in (0.2, 0.3], and 0 falls in the first bin.
    """
    sums: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for c, ok in zip(confidence, correct, strict=False):
        s = sums[_bin_index(c, n_bins)]
        s[0] += 1
        s[1] += c
        s[2] += 1.0 if ok else 0.0
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "count": int(s[0]),
            "confidence": s[1] / s[0],
            "accuracy": s[2] / s[0],
        }
        for b, s in sorted(sums.items())
    ]


def ece(confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """Expected calibration error: sum over (lo, hi] bins of |bin| / n * |accuracy - mean confidence|."""
    n = len(confidence)
    if n == 0:
        return math.nan
    return sum(
        b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(confidence, correct, n_bins)
    )


def brier(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Mean squared difference between confidence and 0/1 correctness."""
    if not confidence:
        return math.nan
    return sum((c - (1.0 if ok else 0.0)) ** 2 for c, ok in zip(confidence, correct, strict=False)) / len(confidence)


def confidence_critique(per_question: Mapping[str, Sequence[tuple[bool, bool]]]) -> dict[str, float | None]:
    """ "Confidence v.s. Critique" metrics (arXiv 2412.19513) from (first, second) correctness pairs.

    Per question i: ``P(a_i)`` is the fraction of samples whose first-turn answer
    is right, ``P(b_i|a_i)`` / ``P(b_i|not a_i)`` the second-turn accuracy among
    samples whose first turn was right / wrong (0 when there are none).

    Returns:
        ``acc1``, ``cl`` = sum P(a)P(b|a) / sum P(a), ``cs`` = sum (1-P(a))P(b|not a) / sum (1-P(a)),
        ``acc2`` = acc1*cl + (1-acc1)*cs and ``rss`` = (acc2 - acc1^2) / (2 acc1 (1-acc1)).
        A ratio with a zero denominator is None (``cl``/``cs`` then count as 0 in ``acc2``).
    """
    pa_sum = pab_sum = npa_sum = npab_sum = 0.0
    for pairs in per_question.values():
        if not pairs:
            continue
        right = [b for a, b in pairs if a]
        wrong = [b for a, b in pairs if not a]
        pa = len(right) / len(pairs)
        pa_sum += pa
        pab_sum += pa * (sum(right) / len(right) if right else 0.0)
        npa_sum += 1 - pa
        npab_sum += (1 - pa) * (sum(wrong) / len(wrong) if wrong else 0.0)
    q = sum(1 for p in per_question.values() if p)
    if q == 0:
        return {"acc1": None, "acc2": None, "cl": None, "cs": None, "rss": None, "questions": 0}
    acc1 = pa_sum / q
    cl = pab_sum / pa_sum if pa_sum else None
    cs = npab_sum / npa_sum if npa_sum else None
    acc2 = acc1 * (cl or 0.0) + (1 - acc1) * (cs or 0.0)
    denom = 2 * acc1 * (1 - acc1)
    rss = (acc2 - acc1**2) / denom if denom else None
    return {"acc1": acc1, "acc2": acc2, "cl": cl, "cs": cs, "rss": rss, "questions": q}


def transition_table(pairs: Sequence[tuple[bool, bool]]) -> dict[str, int]:
    """2x2 counts of first-turn vs final correctness: ``right->right``, ``right->wrong``...."""
    names = {True: "right", False: "wrong"}
    counts = Counter(f"{names[a]}->{names[b]}" for a, b in pairs)
    return {f"{x}->{y}": counts.get(f"{x}->{y}", 0) for x in ("right", "wrong") for y in ("right", "wrong")}


# ---------------------------------------------------------------- summaries


def summarize(records: Sequence[ItemRecord], *, seed: int = 0, n_boot: int = 2000, n_bins: int = 10) -> dict[str, Any]:
    """All metrics of one recipe's records, as JSON-able data.

    Args:
        records: One record per (item, sample).
        seed: Bootstrap seed.
        n_boot: Bootstrap resamples.
        n_bins: Calibration bins.

    Returns:
        A dict with ``accuracy``, ``accuracy_ci``, ``cost``, ``failures`` and,
        when they apply, ``selective``, ``calibration`` and ``two_turn``.
    """
    by_q: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        by_q[r.item_key].append(r)
    n = len(records)
    correct = sum(r.correct for r in records)
    groups = [[1.0 if r.correct else 0.0 for r in rs] for rs in by_q.values()]
    acc = float(np.mean([np.mean(g) for g in groups])) if groups else math.nan
    tokens = sum(r.tokens for r in records)
    per = (lambda total: total / n) if n else (lambda total: math.nan)
    failed = [r for r in records if r.error is not None]
    out: dict[str, Any] = {
        "items": len(by_q),
        "samples": n,
        "correct": correct,
        "accuracy": acc,
        "accuracy_ci": list(bootstrap_ci(groups, n_boot=n_boot, seed=seed)),
        "cost": {
            "calls_per_item": per(sum(r.calls for r in records)),
            "prompt_tokens_per_item": per(sum(r.prompt_tokens for r in records)),
            "completion_tokens_per_item": per(sum(r.completion_tokens for r in records)),
            "tokens_per_item": per(tokens),
            "wall_s_per_item": per(sum(r.wall_s for r in records)),
            "total_calls": sum(r.calls for r in records),
            "total_tokens": tokens,
            "tokens_per_correct": tokens / correct if correct else None,
        },
        "failures": {"count": len(failed), "by_kind": dict(Counter(r.error_kind or "error" for r in failed))},
    }
    ok = [r for r in records if r.error is None]
    scored = [r for r in ok if r.score is not None and math.isfinite(r.score)]
    if any(r.abstained for r in records) or scored:
        out["selective"] = _selective(ok, scored, n)
    if scored:
        out["calibration"] = _calibration(scored, n_bins)
    two = [r for r in ok if r.first_correct is not None]
    if two:
        per_q: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for r in two:
            per_q[r.item_key].append((bool(r.first_correct), r.answer_correct))
        out["two_turn"] = {
            **confidence_critique(per_q),
            "table": transition_table([(bool(r.first_correct), r.answer_correct) for r in two]),
        }
    return out


def _selective(ok: Sequence[ItemRecord], scored: Sequence[ItemRecord], n: int) -> dict[str, Any]:
    answered = [r for r in ok if not r.abstained]
    if scored:
        ranked, basis = scored, "score"
        conf = [float(r.score) for r in scored]  # type: ignore[arg-type]
    else:
        ranked, basis = ok, "abstention"
        conf = [0.0 if r.abstained else 1.0 for r in ok]
    right = [r.answer_correct for r in ranked]
    points, area = risk_coverage(conf, right)
    return {
        "coverage": len(answered) / n if n else math.nan,
        "selective_accuracy": sum(r.answer_correct for r in answered) / len(answered) if answered else None,
        "abstained": sum(r.abstained for r in ok),
        "aurc": area,
        "aurc_random": 1.0 - sum(right) / len(right) if right else math.nan,
        "curve_basis": basis,
        "risk_coverage": [list(p) for p in points],
    }


def _calibration(scored: Sequence[ItemRecord], n_bins: int) -> dict[str, Any]:
    conf = [float(r.score) for r in scored]  # type: ignore[arg-type]
    if min(conf) < 0.0 or max(conf) > 1.0:
        return {"skipped": "scores are not probabilities in [0, 1]", "n": len(conf)}
    ok = [r.answer_correct for r in scored]
    return {
        "n": len(conf),
        "ece": ece(conf, ok, n_bins),
        "brier": brier(conf, ok),
        "bins": reliability_bins(conf, ok, n_bins),
    }


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (cost, accuracy) points, whether each is not dominated (cheaper-or-equal and at least as accurate)."""
    flags = []
    for i, (c, a) in enumerate(points):
        dominated = any((c2 <= c and a2 >= a and (c2 < c or a2 > a)) for j, (c2, a2) in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def compare(
    summaries: Sequence[tuple[str, Mapping[str, Any]]],
    paired: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """Comparison rows against the first (baseline) recipe.

    Each row has ``label``, ``accuracy``, ``accuracy_ci``, ``gain`` (accuracy
    minus the baseline's), ``tokens_per_item``, ``cost_multiple`` (tokens per
    item / the baseline's), ``acc_per_1k_tokens``, ``rank`` (by accuracy per
    cost, 1 = best; runs without a figure, e.g. 0 tokens per item, rank last)
    and ``pareto``. With ``paired`` (label -> ``paired.paired_gain`` against the
    baseline), rows also get ``gain_ci``, ``wins``, ``losses`` and ``p_value``
    (None for the baseline and for labels without a pairing).
    """
    if not summaries:
        return []
    base = summaries[0][1]
    base_acc, base_tpi = base["accuracy"], base["cost"]["tokens_per_item"]
    rows: list[dict[str, Any]] = []
    for index, (label, s) in enumerate(summaries):
        tpi = s["cost"]["tokens_per_item"]
        rows.append(
            {
                "label": label,
                "accuracy": s["accuracy"],
                "accuracy_ci": s["accuracy_ci"],
                "gain": s["accuracy"] - base_acc,
                "tokens_per_item": tpi,
                "cost_multiple": tpi / base_tpi if base_tpi else None,
                "acc_per_1k_tokens": s["accuracy"] / (tpi / 1000) if tpi else None,
            }
        )
        if paired is not None:
            pair = paired.get(label) if index else None
            rows[-1].update({key: (pair or {}).get(key) for key in ("gain_ci", "wins", "losses", "p_value")})
    ranked = sorted(rows, key=lambda r: (r["acc_per_1k_tokens"] is None, -(r["acc_per_1k_tokens"] or 0.0)))
    for i, r in enumerate(ranked, start=1):
        r["rank"] = i
    for r, flag in zip(rows, pareto_front([(r["tokens_per_item"], r["accuracy"]) for r in rows]), strict=False):
        r["pareto"] = flag
    return rows
