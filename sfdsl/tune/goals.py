"""What ``sfrun tune`` optimises: accuracy against one cost (``--objective``), under ``--constraint``s.

A constraint is on a measured mean (``tokens_per_item``, ``calls_per_item``, ``wall_s_per_item``), on accuracy,
or on the static worst case of one item (``bound_tokens``: generated tokens, ``bound_calls``: model calls, as
``sfrun check`` prints them). Only the last kind is known before a configuration runs, so only it can skip one:
a worst case says nothing certain about a mean (an adaptive recipe's mean can lie far below its worst case).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sfdsl.errors import InputError

#: Cost objective name -> the per-item cost field of ``sfdsl.eval.metrics.summarize``'s ``cost``.
COSTS: dict[str, str] = {"tokens": "tokens_per_item", "calls": "calls_per_item", "latency": "wall_s_per_item"}

#: Constraint names: ``accuracy``, a mean cost per item (``latency_per_item`` is ``wall_s_per_item``), or a
#: static worst case per item.
_CONSTRAINT_FIELDS: dict[str, str] = {
    "accuracy": "accuracy",
    "bound_tokens": "bound_tokens",
    "bound_calls": "bound_calls",
    "tokens_per_item": "tokens_per_item",
    "calls_per_item": "calls_per_item",
    "wall_s_per_item": "wall_s_per_item",
    "latency_per_item": "wall_s_per_item",
}
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


class GoalError(InputError):
    """Raised when ``--objective`` or ``--constraint`` is malformed."""


@dataclass(frozen=True)
class Objective:
    """Maximise accuracy, minimise ``cost`` (a ``COSTS`` key)."""

    cost: str = "tokens"

    @property
    def field(self) -> str:
        """The per-item cost field this objective minimises."""
        return COSTS[self.cost]


def parse_objective(text: str) -> Objective:
    """``accuracy,tokens`` (or ``accuracy,calls``, ``accuracy,latency``).

    Raises:
        GoalError: for anything else.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or parts[0] != "accuracy" or parts[1] not in COSTS:
        raise GoalError(f"--objective expects accuracy,{'|'.join(COSTS)}, got {text!r}")
    return Objective(parts[1])


@dataclass(frozen=True)
class Constraint:
    """``field <= limit`` for a cost, ``accuracy >= limit`` for accuracy."""

    field: str
    op: str
    limit: float

    @property
    def on_bound(self) -> bool:
        """A limit on the static worst case, known before the configuration runs."""
        return self.field.startswith("bound_")

    @property
    def on_mean_cost(self) -> bool:
        """A limit on a measured mean cost per item."""
        return self.field != "accuracy" and not self.on_bound

    def holds(self, accuracy: float, cost: Mapping[str, Any], bound: Mapping[str, Any] | None = None) -> bool:
        """Whether a point (accuracy, per-item ``cost`` fields, static ``bound`` calls/tokens) meets it."""
        if self.on_bound:
            value = (bound or {}).get(self.field.removeprefix("bound_"))
        else:
            value = accuracy if self.field == "accuracy" else cost.get(self.field)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.on_bound  # a recipe without a static bound is not held to one
        return bool(value <= self.limit) if self.op == "<=" else bool(value >= self.limit)

    def bound_exceeds(self, calls: int, tokens: int) -> bool:
        """Whether a static worst case (model calls, generated tokens per item) goes past this limit."""
        worst = {"bound_tokens": tokens, "bound_calls": calls}.get(self.field)
        return worst is not None and worst > self.limit

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.limit:g}"


def parse_constraints(texts: list[str]) -> list[Constraint]:
    """Every ``--constraint``; a name given twice is an error.

    Raises:
        GoalError: for a malformed constraint or a repeated name.
    """
    out = [parse_constraint(t) for t in texts]
    names = [c.field for c in out]
    for name in names:
        if names.count(name) > 1:
            raise GoalError(f"--constraint {name} is given twice")
    return out


def parse_constraint(text: str) -> Constraint:
    """``tokens_per_item<=600``, ``calls_per_item<=4``, ``wall_s_per_item<=2``, ``bound_tokens<=1024``,
    ``bound_calls<=8``, ``accuracy>=0.8``.

    Raises:
        GoalError: for an unknown name, or a bound in the wrong direction.
    """
    match = _CONSTRAINT.match(text)
    if not match or match.group(1) not in _CONSTRAINT_FIELDS:
        names = ", ".join(sorted(_CONSTRAINT_FIELDS))
        raise GoalError(f"--constraint expects NAME<=X or accuracy>=X (names: {names}), got {text!r}")
    field, op, limit = _CONSTRAINT_FIELDS[match.group(1)], match.group(2), float(match.group(3))
    if (field == "accuracy") != (op == ">="):
        want = "accuracy>=X" if field == "accuracy" else f"{match.group(1)}<=X"
        raise GoalError(f"--constraint {text!r}: write {want}")
    if not math.isfinite(limit) or limit < 0:
        raise GoalError(f"--constraint {text!r}: the limit must be a number >= 0")
    return Constraint(field, op, limit)
