"""Vote tallies: majority and score-weighted, with early stopping. NoAnswer never votes.

``share`` counts the samples that gave an answer; ``share_all`` all samples (1 answer
out of 5 samples: share 1.0, share_all 0.2); ``margin`` is the winner's lead.

Ties go to the answer that reached the tied count first: counting the samples in order,
the one whose last vote came earliest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sfdsl.agent_values import canonical_json
from sfdsl.expressions import scalar
from sfdsl.values import Action, NoAnswer, VoteOutcome, plain


def vote_key(value: Any) -> str:
    """The identity of an answer for counting: numbers compare numerically, text case-folded, and tool calls
    and JSON records by their canonical form (``sfdsl.agent_values.canonical_json``), so key order, spacing
    and ``2`` vs ``2.0`` do not split a vote."""
    v = scalar(value)
    if isinstance(v, Action):
        return f"call:{v.key}" if v.kind == "call" else " ".join(v.text.strip().lower().split())
    if isinstance(v, (dict, list, tuple)):
        return canonical_json(plain(v))
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return repr(float(v))
    return " ".join(str(v).strip().lower().split())


@dataclass
class Tally:
    """A running count of (weighted) votes."""

    expected: int
    weights: dict[str, float] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    representative: dict[str, Any] = field(default_factory=dict)
    seen: int = 0
    valid: int = 0
    unanswered: float = 0.0  # the weight of samples that gave no answer

    def add(self, value: Any, weight: float = 1.0) -> None:
        self.seen += 1
        if isinstance(value, NoAnswer) or value is None:
            self.unanswered += weight
            return
        self.valid += 1
        key = vote_key(value)
        self.weights[key] = self.weights.get(key, 0.0) + weight
        if weight != 0 or key not in self.reached:
            self.reached[key] = self.seen  # a zero-weight vote does not move when the count was reached
        self.representative.setdefault(key, value)

    def leader(self) -> str | None:
        if not self.weights:
            return None
        return max(self.weights, key=lambda k: (self.weights[k], -self.reached[k]))

    def decided(self, *, stop: str | None, margin: float | None, max_weight: float = 1.0) -> bool:
        """Whether no remaining vote can change the winner (or the margin threshold is met)."""
        leader = self.leader()
        if leader is None:
            return False
        remaining = (self.expected - self.seen) * max_weight
        runner_up = max((w for k, w in self.weights.items() if k != leader), default=0.0)
        if stop == "unbeatable" and self.weights[leader] > runner_up + remaining:
            return True
        if margin is not None:
            total = sum(self.weights.values()) + remaining
            return total > 0 and (self.weights[leader] - runner_up - remaining) / total >= margin
        return False

    def outcome(self, *, stopped_early: bool = False) -> VoteOutcome:
        leader = self.leader()
        total = sum(self.weights.values())
        if leader is None:
            return VoteOutcome(answer=NoAnswer("no votes"), share=0.0, votes=0, total=self.seen,
                               stopped_early=stopped_early)
        top = self.weights[leader]
        runner_up = max((w for k, w in self.weights.items() if k != leader), default=0.0)
        everything = total + self.unanswered
        return VoteOutcome(
            answer=scalar(self.representative[leader]),
            share=top / total if total > 0 else 0.0,
            votes=self.valid,
            total=self.seen,
            counts=dict(self.weights),
            stopped_early=stopped_early,
            share_all=top / everything if everything > 0 else 0.0,
            margin=top - runner_up,
        )


def vote(values: list[Any], weights: list[float] | None = None) -> VoteOutcome:
    """Majority (or weighted) vote over a finished list of answers.

    >>> vote([3, 4, 3]).answer
    3
    """
    tally = Tally(expected=len(values))
    for i, value in enumerate(values):
        tally.add(value, float(scalar(weights[i])) if weights is not None and i < len(weights) else 1.0)
    return tally.outcome()
