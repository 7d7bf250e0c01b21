"""The front half of sfdsl: load → parse → check → plan, plus static cost bounds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sfdsl import ast
from sfdsl.call_graph import call_problems
from sfdsl.checker import check_program
from sfdsl.cost import Bound, bound_with_errors
from sfdsl.diagnostics import Diagnostic
from sfdsl.errors import CompileError
from sfdsl.plan import Plan, plan_recipe
from sfdsl.program import ParsedProgram, load_program, program_from_text, recipe_key


@dataclass
class CompiledProgram:
    """A checked program: its recipes' plans and cost bounds at default inputs."""

    program: ParsedProgram
    plans: dict[str, Plan] = field(default_factory=dict)
    bounds: dict[str, Bound] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def main(self) -> str:
        return self.program.main

    def recipes(self) -> list[ast.RecipeDecl]:
        return self.program.modules[self.program.main].recipes


def compile_file(path: str | Path, *, import_path: Sequence[str | Path] = ()) -> CompiledProgram:
    """Load, check and plan a .sf file.

    Raises:
        SourceNotFoundError: when the file does not exist.
        CompileError: with every error (and warning) found.
    """
    return compile_program(load_program(path, import_path=import_path))


def compile_text(text: str, *, file: str = "<string>", import_path: Sequence[str | Path] = ()) -> CompiledProgram:
    """Like ``compile_file`` for source held in memory."""
    return compile_program(program_from_text(text, file=file, import_path=import_path))


def compile_program(program: ParsedProgram) -> CompiledProgram:
    """Check every module, then plan and bound each recipe of the main file."""
    too_deep = call_problems(program)  # before the passes that follow calls recursively
    if too_deep:
        raise CompileError(diagnostics=too_deep, sources=program.sources)
    diagnostics = check_program(program)
    compiled = CompiledProgram(program=program)
    clean = not any(d.is_error for d in diagnostics)
    recipes = [(file, recipe) for file, module in program.modules.items() for recipe in module.recipes]
    plans: dict[str, Plan] = {}
    for file, recipe in recipes:
        try:
            plans[recipe_key(program, file, recipe.name)] = plan_recipe(recipe)
        except Exception:
            if clean:
                raise
    for file, recipe in recipes:
        key = recipe_key(program, file, recipe.name)
        if key not in plans:
            continue
        try:
            bound, problems = bound_with_errors(program, file, recipe, plans=plans)
        except Exception:
            if clean:
                raise
            continue
        diagnostics += problems
        if clean and not any(d.is_error for d in problems):
            compiled.plans[key], compiled.bounds[key] = plans[key], bound
    compiled.warnings = [d for d in diagnostics if not d.is_error]
    if any(d.is_error for d in diagnostics):
        raise CompileError(diagnostics=_unique(diagnostics), sources=program.sources)
    return compiled


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, int, int]] = set()
    out = []
    for d in diagnostics:
        key = (d.code, d.message, d.span.line, d.span.column)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
