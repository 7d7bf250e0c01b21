"""Document symbols: each recipe with its prompts, models and steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sfdsl import ast
from sfdsl.diagnostics import Span
from sfdsl.registry import KINDS


@dataclass(frozen=True)
class Outline:
    """One symbol: name, kind (recipe, prompt, model, step), detail, full span, name span, children."""

    name: str
    kind: str
    detail: str
    span: Span
    selection: Span
    children: list[Outline] = field(default_factory=list)


def outline(module: ast.Module) -> list[Outline]:
    """The recipes of a module, each with what its body declares (nested blocks included)."""
    found = []
    for recipe in module.recipes:
        whole = recipe.span.model_copy(update={"end_line": recipe.body.span.end_line,
                                               "end_column": recipe.body.span.end_column})
        params = ", ".join(f"{p.name}: {p.type}" for p in recipe.params)
        found.append(Outline(recipe.name, "recipe", f"({params})", whole, recipe.span, _block(recipe.body)))
    return found


def _block(block: ast.Block | None) -> list[Outline]:
    items: list[Outline] = []
    for stmt in block.stmts if block is not None else []:
        items += STATEMENTS.get(stmt.stmt, _nested)(stmt)
    return items


def _prompt(stmt: Any) -> list[Outline]:
    whole = stmt.span.model_copy(update={"end_line": stmt.body_span.end_line, "end_column": stmt.body_span.end_column})
    return [Outline(stmt.name, "prompt", "chat" if stmt.turns else "text", whole, stmt.span)]


def _model(stmt: Any) -> list[Outline]:
    return [Outline(stmt.name, "model", stmt.backend, stmt.span, stmt.span)]


def _assign(stmt: Any) -> list[Outline]:
    value = stmt.value
    if not ast.is_step(value):
        return [Outline(stmt.target, "name", "", stmt.span, stmt.span)]
    children = [item for body in KINDS[value.kind].bodies(value).values() for item in _block(body)]
    whole = stmt.span.model_copy(update={"end_line": max(value.span.end_line, stmt.span.end_line),
                                         "end_column": value.span.end_column})
    return [Outline(stmt.target, "step", value.kind, whole, stmt.span, children)]


def _if(stmt: Any) -> list[Outline]:
    return _block(stmt.then) + _block(stmt.orelse)


def _nested(stmt: Any) -> list[Outline]:
    value = getattr(stmt, "value", None)
    if value is not None and ast.is_step(value):
        return [item for body in KINDS[value.kind].bodies(value).values() for item in _block(body)]
    return []


STATEMENTS = {"prompt": _prompt, "model": _model, "assign": _assign, "if": _if}
