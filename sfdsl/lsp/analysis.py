"""One document's analysis: the compiler's diagnostics, the parsed module, and each recipe's symbols and bound."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import networkx as nx

from sfdsl import ast
from sfdsl.bounds import Bound
from sfdsl.checker import RecipeChecker
from sfdsl.compiler import compile_program
from sfdsl.diagnostics import Diagnostic
from sfdsl.errors import CompileError
from sfdsl.log import get_logger
from sfdsl.lsp.chunks import PieceCache, parse_pieces
from sfdsl.lsp.lexicon import Lexicon
from sfdsl.program import ParsedProgram, program_from_text
from sfdsl.scope import Symbol

log = get_logger(__name__)
#: The code of a call of an unknown recipe (sfdsl/steps/call.py).
UNKNOWN_RECIPE = "SF502"


@dataclass
class RecipeFacts:
    """What the checker learnt about one recipe: its names with types, its prompts and its models."""

    symbols: list[tuple[str, Symbol]] = field(default_factory=list)
    prompts: dict[str, ast.PromptDecl] = field(default_factory=dict)
    models: dict[str, ast.ModelDecl] = field(default_factory=dict)

    def symbol(self, name: str) -> Symbol | None:
        """The first definition of ``name`` in the recipe."""
        return next((sym for n, sym in self.symbols if n == name), None)


@dataclass
class Analysis:
    """A document checked as the compiler checks it, with what the editor features read.

    ``module`` holds every recipe that parses; ``complete`` says whether that is all of them.
    """

    file: str
    text: str
    lexicon: Lexicon
    diagnostics: list[Diagnostic] = field(default_factory=list)
    module: ast.Module | None = None
    complete: bool = False
    program: ParsedProgram | None = None
    bounds: dict[str, Bound] = field(default_factory=dict)

    def recipe(self, name: str | None) -> ast.RecipeDecl | None:
        if self.module is None or name is None:
            return None
        return next((r for r in self.module.recipes if r.name == name), None)

    @cached_property
    def facts(self) -> dict[str, RecipeFacts]:
        """Each recipe's names and types (checked on first use: diagnostics do not need them)."""
        if self.module is None:
            return {}
        program = self.program or _alone(self.file, self.text, self.module)
        return _facts(program, self.file, self.module)


def analyze(text: str, file: str, import_path: Sequence[str | Path] = (), cache: PieceCache | None = None) -> Analysis:
    """Parse (recipe by recipe, through ``cache``), load imports (confined as the compiler confines them),
    check and bound ``text``. Recipes with syntax errors are left out; the others are still checked."""
    lexicon = Lexicon(text)
    module, diagnostics, broken = parse_pieces(lexicon, file, cache if cache is not None else PieceCache())
    result = Analysis(file=file, text=text, lexicon=lexicon, module=module, complete=not diagnostics)
    before = len(diagnostics)
    program = _program(text, file, module, import_path, diagnostics)
    imports_failed = len(diagnostics) > before
    result.program = program
    try:
        compiled = compile_program(program)
    except CompileError as exc:
        found = list(exc.diagnostics)
    else:
        found = list(compiled.warnings)
        result.bounds = {name: bound for name, bound in compiled.bounds.items() if "::" not in name}
    mentions = tuple(f"'{name}'" for name in broken)
    follow_on = {UNKNOWN_RECIPE} if imports_failed else set()  # calls into a file that did not load
    diagnostics += [d for d in found if not any(m in d.message for m in mentions) and d.code not in follow_on]
    result.diagnostics = diagnostics
    return result


def _program(text: str, file: str, module: ast.Module, import_path: Sequence[str | Path],
             diagnostics: list[Diagnostic]) -> ParsedProgram:
    """The program of ``module``: its imports loaded from disk (import problems join ``diagnostics``)."""
    rows = [""] * max([i.span.line for i in module.imports] or [0])
    for imp in module.imports:
        alias = f" as {imp.alias}" if imp.alias else ""
        rows[imp.span.line - 1] = " " * (imp.span.column - 1) + f"import {json.dumps(imp.path)}{alias}"
    try:
        program = program_from_text("\n".join(rows), file=file, import_path=import_path)
    except CompileError as exc:
        diagnostics += exc.diagnostics
        program = _alone(file, text, module)
    program.modules[file] = module
    program.sources[file] = text
    return program


def _alone(file: str, text: str, module: ast.Module) -> ParsedProgram:
    """A program of the one module (its imports failed), so its recipes can still be checked."""
    return ParsedProgram(main=file, modules={file: module}, sources={file: text}, aliases={file: {}},
                   plain_imports={file: []})


def _facts(program: ParsedProgram, file: str, module: ast.Module) -> dict[str, RecipeFacts]:
    facts: dict[str, RecipeFacts] = {}
    for recipe in module.recipes:
        checker = RecipeChecker(program, file, recipe, nx.DiGraph())
        try:
            checker.run()
        except Exception as exc:  # the checker's own problems are already reported by the compiler
            log.debug("lsp_check_failed", recipe=recipe.name, error=repr(exc))
        facts[recipe.name] = RecipeFacts(list(checker.symbols), dict(checker.prompts), dict(checker.models))
    return facts
