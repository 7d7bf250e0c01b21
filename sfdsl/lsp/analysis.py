"""One document's analysis: the compiler's diagnostics, the parsed module, and each recipe's symbols and bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from sfdsl import ast
from sfdsl.bounds import Bound
from sfdsl.checker import RecipeChecker
from sfdsl.compiler import compile_program
from sfdsl.diagnostics import Diagnostic
from sfdsl.errors import CompileError
from sfdsl.log import get_logger
from sfdsl.parser import parse
from sfdsl.program import ParsedProgram, program_from_text
from sfdsl.scope import Symbol

log = get_logger(__name__)


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
    """A document checked as the compiler checks it, with what the editor features read."""

    file: str
    text: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    module: ast.Module | None = None
    program: ParsedProgram | None = None
    facts: dict[str, RecipeFacts] = field(default_factory=dict)
    bounds: dict[str, Bound] = field(default_factory=dict)

    def recipe(self, name: str | None) -> ast.Recipe | None:
        if self.module is None or name is None:
            return None
        return next((r for r in self.module.recipes if r.name == name), None)


def analyze(text: str, file: str, import_path: Sequence[str | Path] = ()) -> Analysis:
    """Parse, load imports (confined as the compiler confines them), check and bound ``text``."""
    result = Analysis(file=file, text=text)
    program: ParsedProgram | None = None
    try:
        program = program_from_text(text, file=file, import_path=import_path)
    except CompileError as exc:
        result.diagnostics = list(exc.diagnostics)
    if program is not None:
        result.program = program
        result.module = program.modules.get(file)
        try:
            compiled = compile_program(program)
        except CompileError as exc:
            result.diagnostics = list(exc.diagnostics)
        else:
            result.diagnostics = list(compiled.warnings)
            result.bounds = {name: bound for name, bound in compiled.bounds.items() if "::" not in name}
    else:
        result.module = _parsed(text, file)
        if result.module is None:
            _check_the_rest(result, import_path)
    if result.module is not None and not result.facts:
        result.facts = _facts(result.program or _alone(file, text, result.module), file, result.module)
    return result


def _check_the_rest(result: Analysis, import_path: Sequence[str | Path]) -> None:
    """With syntax errors in some recipes, check the others: blank out the broken recipes (keeping every line
    where it is) and add the semantic diagnostics of what remains."""
    from sfdsl.lsp.lexicon import Lexicon

    broken_lines = {d.span.line for d in result.diagnostics if d.span.file == result.file}
    lex = Lexicon(result.text)
    kept, blanked = list(result.text), []
    for name, _, start, end in lex.recipes:
        first, last = lex.position(start)[0] + 1, lex.position(end)[0] + 1
        if any(first <= line <= last for line in broken_lines):
            blanked.append(name)
            kept[start:end] = [ch if ch == "\n" else " " for ch in result.text[start:end]]
    if not blanked:
        return
    rest = analyze("".join(kept), result.file, import_path)
    if rest.module is None:
        return
    mentions = tuple(f"'{name}'" for name in blanked)
    result.diagnostics += [d for d in rest.diagnostics if not any(m in d.message for m in mentions)]
    result.facts, result.bounds, result.program = rest.facts, rest.bounds, rest.program


def _parsed(text: str, file: str) -> ast.Module | None:
    try:
        return parse(text, file=file)
    except CompileError:
        return None


def _alone(file: str, text: str, module: ast.Module) -> ParsedProgram:
    """A program of the one module (its imports failed), so its recipes can still be checked for types."""
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
