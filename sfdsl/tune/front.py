"""The dev-split Pareto front of accuracy against cost, with CIs, and the configuration chosen from it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sfdsl.eval.metrics import pareto_front, summarize
from sfdsl.eval.store import ItemRecord
from sfdsl.tune.goals import Constraint, Objective
from sfdsl.tune.space import Config


@dataclass
class Point:
    """One configuration measured on every dev item.

    Attributes:
        config: The configuration.
        inputs: Every input it fixes (``-i`` ones included): what ``best.json`` holds when it is chosen.
        summary: ``sfdsl.eval.metrics.summarize`` of its dev records.
        bound: Its static worst case per item (``calls``, ``tokens``), when known.
        on_front: Not dominated by another point (no costlier and at least as accurate).
    """

    config: Config
    inputs: dict[str, Any]
    summary: dict[str, Any]
    bound: dict[str, int] | None = None
    on_front: bool = False

    @property
    def accuracy(self) -> float:
        return float(self.summary["accuracy"])

    def cost(self, field: str) -> float:
        value = self.summary["cost"].get(field)
        return math.nan if value is None else float(value)

    def to_json(self, objective: Objective, chosen: bool = False) -> dict[str, Any]:
        """One ``front.json`` object: inputs, accuracy and CI, mean cost per item."""
        cost = self.summary["cost"]
        return {
            "recipe": self.config.recipe,
            "inputs": self.inputs,
            "searched": dict(self.config.inputs),
            "items": self.summary["items"],
            "accuracy": self.accuracy,
            "accuracy_ci": self.summary["accuracy_ci"],
            "cost_per_item": {
                "tokens": cost["tokens_per_item"],
                "calls": cost["calls_per_item"],
                "wall_s": cost["wall_s_per_item"],
            },
            "objective_cost": self.cost(objective.field),
            "bound": self.bound,
            "on_front": self.on_front,
            "chosen": chosen,
        }


def measure(configs: Sequence[Config], records: Mapping[str, Sequence[ItemRecord]],
            inputs: Mapping[str, Mapping[str, Any]], objective: Objective, *, seed: int = 0,
            bounds: Mapping[str, dict[str, int] | None] | None = None) -> list[Point]:
    """Points for the configurations, the front marked, cheapest first.

    Args:
        configs: Configurations that ran on every dev item.
        records: Their dev records by ``config.key``.
        inputs: Their full inputs by ``config.key``.
        objective: The cost axis of the front.
        seed: Bootstrap seed.
        bounds: Their static worst cases by ``config.key``.
    """
    points = [Point(c, dict(inputs[c.key]), summarize(records[c.key], seed=seed), (bounds or {}).get(c.key))
              for c in configs]
    flags = pareto_front([(p.cost(objective.field), p.accuracy) for p in points])
    for point, flag in zip(points, flags, strict=True):
        point.on_front = flag
    return sorted(points, key=lambda p: (p.cost(objective.field), -p.accuracy))


def choose(points: Sequence[Point], objective: Objective, constraints: Sequence[Constraint] = ()) -> Point | None:
    """The configuration to use, among the points that meet every constraint.

    * with an accuracy constraint: the cheapest such point (ties: the more accurate);
    * otherwise: the most accurate one (ties: the cheaper).

    Returns None when no point meets the constraints.
    """
    field = objective.field
    feasible = [p for p in points if all(c.holds(p.accuracy, p.summary["cost"], p.bound) for c in constraints)]
    if not feasible:
        return None
    if any(c.field == "accuracy" for c in constraints):
        return min(feasible, key=lambda p: (p.cost(field), -p.accuracy))
    return min(feasible, key=lambda p: (-p.accuracy, p.cost(field)))
