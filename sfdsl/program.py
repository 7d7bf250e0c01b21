"""A loaded program: the main .sf file, its imports, and a table of every recipe."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span, with_suggestion
from sfdsl.errors import CompileError, SourceNotFoundError
from sfdsl.parser import parse


@dataclass
class Program:
    """Every parsed module of a program, keyed by file path."""

    main: str
    modules: dict[str, ast.Module] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # file -> alias -> imported file
    plain_imports: dict[str, list[str]] = field(default_factory=dict)  # file -> files imported without alias

    def recipes_in(self, file: str) -> dict[str, ast.Recipe]:
        return {r.name: r for r in self.modules[file].recipes}

    def resolve_call(self, file: str, target: list[str]) -> tuple[str, ast.Recipe] | None:
        """Find the recipe a `call` names from within ``file``."""
        if len(target) == 1:
            recipe = self.recipes_in(file).get(target[0])
            if recipe is not None:
                return file, recipe
            for imported in self.plain_imports.get(file, []):
                if target[0] in self.recipes_in(imported):
                    return imported, self.recipes_in(imported)[target[0]]
            return None
        if len(target) == 2:
            aliased = self.aliases.get(file, {}).get(target[0])
            if aliased is not None and target[1] in self.recipes_in(aliased):
                return aliased, self.recipes_in(aliased)[target[1]]
        return None

    def callable_names(self, file: str) -> list[str]:
        names = list(self.recipes_in(file))
        for imported in self.plain_imports.get(file, []):
            names += list(self.recipes_in(imported))
        for alias, imported in self.aliases.get(file, {}).items():
            names += [f"{alias}.{n}" for n in self.recipes_in(imported)]
        return names

    def unknown_recipe_message(self, file: str, target: list[str]) -> str:
        """The error for a `call` of a recipe that does not exist, with a suggestion."""
        name = ".".join(target)
        return with_suggestion(f"unknown recipe '{name}'", name, self.callable_names(file))

    def fingerprint(self) -> str:
        """sha256 over every source file of the program."""
        digest = hashlib.sha256()
        for name in sorted(self.sources):
            digest.update(name.encode())
            digest.update(self.sources[name].encode())
        return digest.hexdigest()


def load_program(path: str | Path) -> Program:
    """Parse a .sf file and, recursively, the files it imports.

    Raises:
        SourceNotFoundError: when the main file does not exist.
        CompileError: with every syntax or import problem found.
    """
    main = Path(path)
    if not main.is_file():
        raise SourceNotFoundError(f"recipe file not found: {main}")
    return _load(str(main), main.read_text(encoding="utf-8"))


def program_from_text(text: str, *, file: str = "<string>") -> Program:
    """Parse a program held in memory (imports resolve relative to the working directory)."""
    return _load(file, text)


def _load(main: str, text: str) -> Program:
    program = Program(main=main)
    diagnostics: list[Diagnostic] = []
    pending: list[tuple[str, str | None]] = [(main, text)]
    while pending:
        file, source = pending.pop()
        if file in program.modules:
            continue
        if source is None:
            source = Path(file).read_text(encoding="utf-8")
        program.sources[file] = source
        try:
            module = parse(source, file=file)
        except CompileError as exc:
            diagnostics += exc.diagnostics
            program.modules[file] = ast.Module(span=Span(file=file), file=file, imports=[], recipes=[])
            continue
        program.modules[file] = module
        aliases: dict[str, str] = {}
        plain: list[str] = []
        for imp in module.imports:
            target = _import_path(file, imp.path)
            if not target.is_file():
                diagnostics.append(
                    Diagnostic(
                        code="SF501",
                        message=f"imported file not found: {imp.path}",
                        span=imp.span,
                        hint=f"looked for {target}",
                    )
                )
                continue
            if imp.alias:
                aliases[imp.alias] = str(target)
            else:
                plain.append(str(target))
            pending.append((str(target), None))
        program.aliases[file] = aliases
        program.plain_imports[file] = plain
    if diagnostics:
        raise CompileError(diagnostics=diagnostics, sources=program.sources)
    return program


def _import_path(importer: str, path: str) -> Path:
    base = Path(importer).parent if not importer.startswith("<") else Path.cwd()
    return (base / path).resolve() if not Path(path).is_absolute() else Path(path)


def recipe_key(program: Program, file: str, name: str) -> str:
    """The name a recipe is known by: bare in the main file, `file::name` elsewhere."""
    return name if file == program.main else f"{file}::{name}"
