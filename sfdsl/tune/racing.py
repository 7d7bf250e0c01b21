"""Racing: grow a configuration's dev items in rungs, and stop it once it cannot be on the front or be chosen.

The rule (also in the README):

* A configuration runs on the first ``m0`` dev items, then on the first ``2·m0``, ``4·m0``… up to all of them.
  Every configuration sees the same items in the same order, so two configurations compare item by item.
* After each rung short of the last, it stops when

  1. an earlier configuration that ran on the same items costs no more per item and wins more items than it
     loses against it, with a one-sided exact sign test at 5% (it is dominated: it cannot be on the front); or
  2. the 95% bootstrap CI of its mean cost per item lies wholly above a ``--constraint`` on that mean, or its
     accuracy CI lies wholly below an ``accuracy>=X`` constraint (it cannot be chosen).

(A configuration whose static worst case breaks a ``bound_*`` constraint never starts: it is skipped.)

A stopped configuration keeps its stored results but is left off the front.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sfdsl.eval.metrics import bootstrap_ci
from sfdsl.eval.paired import item_accuracy, sign_test
from sfdsl.eval.store import ItemRecord
from sfdsl.tune.goals import Constraint

#: One-sided level of the dominance and constraint tests.
ALPHA = 0.05


def rungs(n_items: int, first: int) -> list[int]:
    """Item counts of successive rungs: ``first``, doubling, ending at ``n_items``.

    >>> rungs(100, 12)
    [12, 24, 48, 96, 100]
    >>> rungs(5, 12)
    [5]
    """
    out: list[int] = []
    m = max(1, first)
    while m < n_items:
        out.append(m)
        m *= 2
    return [*out, n_items] if n_items > 0 else []


def default_first_rung(n_items: int) -> int:
    """The first rung: an eighth of the dev items, at least 8 (all of them when there are few)."""
    return min(n_items, max(8, math.ceil(n_items / 8)))


@dataclass(frozen=True)
class Rival:
    """An earlier configuration's records, to race against."""

    name: str
    records: Sequence[ItemRecord]


def item_costs(records: Sequence[ItemRecord], field: str) -> list[float]:
    """Per record, the cost named by a ``summarize`` cost field (``tokens_per_item``...)."""
    getters = {
        "tokens_per_item": lambda r: float(r.tokens),
        "calls_per_item": lambda r: float(r.calls),
        "wall_s_per_item": lambda r: float(r.wall_s),
    }
    return [getters[field](r) for r in records]


def stop_reason(records: Sequence[ItemRecord], rivals: Sequence[Rival], *, cost_field: str,
                constraints: Sequence[Constraint] = (), seed: int = 0) -> str | None:
    """Why a configuration with these records (on the first m dev items) stops now, or None to go on.

    Args:
        records: The configuration's records on the rung's items.
        rivals: Earlier configurations, each with its records on (at least) the same items.
        cost_field: The cost objective's per-item field.
        constraints: The ``--constraint``s (those on static bounds are not looked at here).
        seed: Bootstrap seed.
    """
    if not records:
        return None
    mine = item_accuracy(records)
    my_cost = _mean(item_costs(records, cost_field))
    for rival in rivals:
        theirs = item_accuracy([r for r in rival.records if r.item_id in mine])
        if theirs.keys() != mine.keys():
            continue
        their_cost = _mean(item_costs([r for r in rival.records if r.item_id in mine], cost_field))
        if their_cost > my_cost:
            continue
        wins = sum(theirs[i] > mine[i] for i in mine)
        losses = sum(theirs[i] < mine[i] for i in mine)
        if wins > losses and sign_test(wins, losses) / 2 < ALPHA:
            return f"dominated by {rival.name} ({wins} items won, {losses} lost, at no more cost)"
    for constraint in constraints:
        reason = None if constraint.on_bound else _infeasible(records, constraint, seed)
        if reason:
            return reason
    return None


def _infeasible(records: Sequence[ItemRecord], constraint: Constraint, seed: int) -> str | None:
    if constraint.on_mean_cost:
        values = item_costs(records, constraint.field)
        low, _ = bootstrap_ci([[v] for v in values], alpha=2 * ALPHA, seed=seed)
        if low > constraint.limit:
            return f"{constraint.field} above {constraint.limit:g} with 95% confidence (CI from {low:.4g})"
        return None
    per_item = item_accuracy(records)
    _, high = bootstrap_ci([[v] for v in per_item.values()], alpha=2 * ALPHA, seed=seed)
    if high < constraint.limit:
        return f"accuracy below {constraint.limit:g} with 95% confidence (CI up to {high:.3f})"
    return None


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def rival_records(history: Mapping[str, Sequence[ItemRecord]], item_ids: set[str]) -> list[Rival]:
    """Rivals from earlier configurations that have a record for every one of these items."""
    out = []
    for name, records in history.items():
        on = [r for r in records if r.item_id in item_ids]
        if {r.item_id for r in on} == item_ids:
            out.append(Rival(name, on))
    return out
