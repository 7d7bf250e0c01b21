"""Scopes of the checker: the symbols a block can see, and the loop a statement is in."""

from __future__ import annotations

from dataclasses import dataclass, field

from sfdsl.diagnostics import Span
from sfdsl.types import Type


@dataclass
class Symbol:
    type: Type
    span: Span
    kind: str
    used: bool = False


@dataclass
class Scope:
    parent: Scope | None = None
    names: dict[str, Symbol] = field(default_factory=dict)

    def lookup(self, name: str) -> Symbol | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None

    def visible(self) -> list[str]:
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            names += list(scope.names)
            scope = scope.parent
        return names


@dataclass
class Loop:
    kind: str  # refine | map | vote | search
    yields: list[Type] = field(default_factory=list)
    nexts: int = 0
