"""Go-to-definition and find-references for prompts, models, recipes (across imports) and assigned names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfdsl.diagnostics import Span
from sfdsl.lsp.analysis import Analysis
from sfdsl.lsp.hover import resolve_import
from sfdsl.lsp.lexicon import Lexicon, Role

#: Each role's namespace: a reference and its declaration share one.
NAMESPACE = {"prompt": "prompt", "decl_prompt": "prompt", "model": "model", "decl_model": "model",
             "recipe": "recipe", "decl_recipe": "recipe", "name": "name", "decl_name": "name"}


@dataclass(frozen=True)
class Loc:
    """A range in a file; lines and characters are 0-based, the end exclusive."""

    file: str
    line: int
    character: int
    end_line: int
    end_character: int

    @classmethod
    def of_span(cls, span: Span) -> Loc:
        return cls(span.file, span.line - 1, span.column - 1, span.end_line - 1, span.end_column - 1)

    @classmethod
    def of_offsets(cls, file: str, lex: Lexicon, start: int, end: int) -> Loc:
        (line, character), (end_line, end_character) = lex.position(start), lex.position(end)
        return cls(file, line, character, end_line, end_character)


def definition(analysis: Analysis, lex: Lexicon, offset: int, import_path: list[str]) -> list[Loc]:
    """Where the prompt, model, recipe, name or import under ``offset`` is defined."""
    literal = lex.comment_or_string_at(offset)
    if literal is not None:
        index = next((i for i, t in enumerate(lex.tokens) if t.start == literal.start), 0)
        if index > 0 and lex.tokens[index - 1].text == "import":
            target = resolve_import(analysis.file, literal.text.strip('"'), import_path)
            return [Loc(str(target), 0, 0, 0, 0)] if target else []
        return []
    at = lex.index_at(offset)
    if at is None or lex.tokens[at].kind != "name":
        return []
    role = lex.role(at)
    space = NAMESPACE.get(role.role)
    if space == "recipe":
        return _recipe(analysis, lex, role)
    facts = analysis.facts.get(role.recipe or "")
    if facts is not None:
        tables: dict[str, dict[str, Any]] = {"prompt": facts.prompts, "model": facts.models}
        decl = tables.get(space or "", {}).get(role.name)
        if decl is not None:
            return [Loc.of_span(decl.span)]
        sym = facts.symbol(role.name) if space == "name" else None
        if sym is not None and sym.span.file == analysis.file:
            return [Loc.of_span(sym.span)]
    return [Loc.of_offsets(analysis.file, lex, lex.tokens[i].start, lex.tokens[i].end)
            for i in _declarations(lex, role, space)][:1]


def _recipe(analysis: Analysis, lex: Lexicon, role: Role) -> list[Loc]:
    if analysis.program is not None:
        resolved = analysis.program.resolve_call(analysis.file, role.name.split("."))
        if resolved is not None:
            return [Loc.of_span(resolved[1].span)]
    return [Loc.of_offsets(analysis.file, lex, lex.tokens[index].start, lex.tokens[index].end)
            for name, index, _, _ in lex.recipes if name == role.name][:1]


def _declarations(lex: Lexicon, role: Role, space: str | None) -> list[int]:
    return [i for i, r in lex.names() if NAMESPACE.get(r.role) == space and r.role.startswith("decl_")
            and r.name == role.name and r.recipe == role.recipe]


def references(analysis: Analysis, lex: Lexicon, offset: int, *, include_declaration: bool) -> list[Loc]:
    """Every use of the prompt, model, recipe or name under ``offset`` in this document."""
    index = lex.index_at(offset)
    if index is None or lex.tokens[index].kind != "name":
        return []
    role = lex.role(index)
    space = NAMESPACE.get(role.role)
    if space is None:
        return []
    found = []
    for i, other in lex.names():
        if NAMESPACE.get(other.role) != space or other.name != role.name:
            continue
        if space != "recipe" and other.recipe != role.recipe:
            continue
        if other.role.startswith("decl_") and not include_declaration:
            continue
        if space == "recipe" and i + 1 < len(lex.tokens) and lex.tokens[i + 1].text == ".":
            continue  # the alias of `call lib.helper(...)`: the recipe's name is the token after the dot
        tok = lex.tokens[i]
        found.append(Loc.of_offsets(analysis.file, lex, tok.start, tok.end))
    if space == "recipe" and include_declaration:  # a recipe of an imported file: its declaration there
        found += [loc for loc in _recipe(analysis, lex, role) if loc.file != analysis.file]
    return found
