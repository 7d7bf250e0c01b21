"""Paired comparison of two runs on the same items: the gain's bootstrap CI and an exact sign test.

Two recipes run on one data set answer the same items, so their difference is best judged item by item: an
item both get right (or both wrong) says nothing about which is better. Resampling items with both runs' results
together gives a much narrower CI on the gain than two independent accuracy CIs, and the items one run wins and
the other loses give an exact sign test (McNemar's exact test when each item has one sample).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sfdsl.eval.metrics import bootstrap_ci
from sfdsl.eval.store import ItemRecord

__all__ = ["item_accuracy", "paired_gain", "paired_gains", "sign_test"]


def item_accuracy(records: Sequence[ItemRecord]) -> dict[str, float]:
    """Accuracy per item id: the share of the item's samples judged correct (failures and abstentions are wrong).

    Items are keyed by their data set id, not their content key, so two runs whose fixed inputs differ
    (``-i max_tokens=…``) still pair on the same rows.
    """
    samples: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        samples[r.item_id].append(r.correct)
    return {item: sum(ok) / len(ok) for item, ok in samples.items()}


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign-test p-value for ``wins`` against ``losses`` (ties already dropped).

    Under the null hypothesis each untied item is a win with probability 1/2; the p-value is twice the smaller
    binomial tail, capped at 1. With one sample per item this is McNemar's exact test.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_gain(
    base: Sequence[ItemRecord],
    other: Sequence[ItemRecord],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Any] | None:
    """``other``'s accuracy gain over ``base`` on the items both runs have, judged item by item.

    Returns:
        ``items`` (shared), ``gain`` (mean per-item accuracy difference), ``gain_ci`` (percentile bootstrap over
        items, both runs resampled together), ``wins`` and ``losses`` (items where ``other``'s accuracy is higher
        or lower) and ``p_value`` (exact sign test on them); None when the runs share no item.
    """
    left, right = item_accuracy(base), item_accuracy(other)
    shared = sorted(left.keys() & right.keys())
    if not shared:
        return None
    diffs = [right[item] - left[item] for item in shared]
    wins = sum(d > 0 for d in diffs)
    losses = sum(d < 0 for d in diffs)
    low, high = bootstrap_ci([[d] for d in diffs], n_boot=n_boot, alpha=alpha, seed=seed)
    return {
        "items": len(shared),
        "gain": sum(diffs) / len(diffs),
        "gain_ci": [low, high],
        "wins": wins,
        "losses": losses,
        "p_value": sign_test(wins, losses),
    }


def paired_gains(
    records: Mapping[str, Sequence[ItemRecord]], labels: Sequence[str], *, seed: int = 0
) -> dict[str, dict[str, Any] | None]:
    """``paired_gain`` of every run in ``labels`` after the first (the baseline) against the baseline."""
    if not labels:
        return {}
    base = records[labels[0]]
    return {label: paired_gain(base, records[label], seed=seed) for label in labels[1:]}
