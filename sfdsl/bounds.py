"""The algebra of static cost bounds: worst-case model calls, tokens and parallelism, and abstract values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfdsl.diagnostics import Diagnostic


@dataclass(frozen=True)
class Bound:
    """Worst case of a recipe or step.

    ``parallel_exact`` is False when ``parallel`` is a cruder upper bound than the plan's true maximum (a plan
    too large to compute the maximum antichain of); the bound is sound either way.
    """

    calls: int = 0
    tokens: int = 0
    parallel: int = 0
    parallel_exact: bool = True

    def then(self, other: Bound) -> Bound:
        return Bound(self.calls + other.calls, self.tokens + other.tokens, max(self.parallel, other.parallel),
                     self.parallel_exact and other.parallel_exact)

    def times(self, k: int, *, concurrent: bool) -> Bound:
        return Bound(self.calls * k, self.tokens * k, self.parallel * k if concurrent else self.parallel,
                     self.parallel_exact)

    def either(self, other: Bound) -> Bound:
        return Bound(max(self.calls, other.calls), max(self.tokens, other.tokens), max(self.parallel, other.parallel),
                     self.parallel_exact and other.parallel_exact)

    def __str__(self) -> str:
        rough = "" if self.parallel_exact else " (upper bound: plan too large for the exact maximum)"
        return (f"≤ {self.calls} model calls, ≤ {self.tokens} generated tokens, "
                f"≤ {self.parallel} sequences at once{rough}")


class BoundError(Exception):
    """A loop bound is not known before the run."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass(frozen=True)
class Abstract:
    """What is statically known of a value: itself, or at least the length of a list."""

    value: Any = None
    known: bool = False
    length: int | None = None


UNKNOWN = Abstract()


def known(value: Any) -> Abstract:
    """A value known before the run."""
    return Abstract(value=value, known=True, length=len(value) if isinstance(value, (list, tuple)) else None)
