"""A parsed program (ParsedProgram): the main .sf file, its imports, and a table of every recipe; the
compiler checks and plans it into a CompiledProgram, which the API wraps as sfdsl.Program."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span, with_suggestion
from sfdsl.errors import CompileError, SourceNotFoundError
from sfdsl.parser import parse
from sfdsl.recipe_paths import confine_paths
from sfdsl.source_limits import MAX_SOURCE_BYTES, normalize_newlines, too_large


@dataclass
class ParsedProgram:
    """Every parsed module of a program, keyed by file path."""

    main: str
    modules: dict[str, ast.Module] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # file -> alias -> imported file
    plain_imports: dict[str, list[str]] = field(default_factory=dict)  # file -> files imported without alias

    def recipes_in(self, file: str) -> dict[str, ast.RecipeDecl]:
        return {r.name: r for r in self.modules[file].recipes}

    def resolve_call(self, file: str, target: list[str]) -> tuple[str, ast.RecipeDecl] | None:
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


def load_program(path: str | Path, *, import_path: Sequence[str | Path] = ()) -> ParsedProgram:
    """Parse a .sf file and, recursively, the files it imports.

    Imports are confined: they must resolve inside the main file's directory
    tree or a directory of ``import_path`` or ``$SFDSL_PATH`` (see ``ImportRoots``);
    so are the files model declarations name (see ``sfdsl.recipe_paths``).

    Raises:
        SourceNotFoundError: when the main file does not exist.
        CompileError: with every syntax or import problem found.
    """
    main = Path(path)
    try:
        found = main.is_file()
    except (OSError, ValueError):  # e.g. a name too long
        found = False
    if not found:
        raise SourceNotFoundError(f"recipe file not found: {main}")
    text = _read(main)
    if isinstance(text, _ReadProblem):
        if text.diagnostic is not None:
            raise CompileError(diagnostics=[text.diagnostic])
        span = Span(file=str(main), line=text.line, column=text.column, end_line=text.line, end_column=text.column)
        raise CompileError(diagnostics=[Diagnostic(code="SF507", message=f"cannot read {main}: {text.message}",
                                                   span=span)])
    return _load(str(main), text, ImportRoots.for_main(main.parent, import_path))


def program_from_text(text: str, *, file: str = "<string>", import_path: Sequence[str | Path] = ()) -> ParsedProgram:
    """Parse a program held in memory (imports resolve inside the working directory or ``import_path``)."""
    base = Path(file).parent if not file.startswith("<") else Path.cwd()
    return _load(file, text, ImportRoots.for_main(base, import_path))


@dataclass(frozen=True)
class ImportRoots:
    """The directories imports may read: the main file's tree, then the search path in order."""

    main: Path
    search: tuple[Path, ...]

    @classmethod
    def for_main(cls, main_dir: Path, import_path: Sequence[str | Path]) -> ImportRoots:
        env = [p for p in os.environ.get("SFDSL_PATH", "").split(os.pathsep) if p]
        search = tuple(Path(p).resolve() for p in [*import_path, *env])
        return cls(main=main_dir.resolve(), search=search)

    def allows(self, real: Path) -> bool:
        """Whether a resolved path lies inside one of the roots."""
        return any(real.is_relative_to(root) for root in (self.main, *self.search))

    def candidates(self, importer_dir: Path, path: str) -> list[Path]:
        """Where ``import "path"`` may point: next to the importer first, then on the search path."""
        if Path(path).is_absolute():
            return [Path(path)]
        return [importer_dir / path, *(root / path for root in self.search)]


@dataclass(frozen=True)
class _ReadProblem:
    message: str
    line: int = 1
    column: int = 1
    diagnostic: Diagnostic | None = None  # a located problem of the file itself (too large)


def _read(path: Path) -> str | _ReadProblem:
    """A source file's text with LF line endings, or why it cannot be used (never its content).

    At most ``MAX_SOURCE_BYTES`` and one more are read: a larger file is refused (SF117) without reading it all.
    """
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        return _ReadProblem(exc.strerror or type(exc).__name__)
    problem = too_large(str(path), data)
    if problem is not None:
        return _ReadProblem(problem.message, problem.span.line, problem.span.column, problem)
    try:
        return normalize_newlines(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return _ReadProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, column {column})",
                            line, column)


def _load(main: str, text: str, roots: ImportRoots) -> ParsedProgram:
    program = ParsedProgram(main=main)
    diagnostics: list[Diagnostic] = []
    pending: list[tuple[str, str]] = [(main, text)]
    while pending:
        file, source = pending.pop()
        if file in program.modules:
            continue
        source = normalize_newlines(source)
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
        importer_dir = Path(file).parent if not file.startswith("<") else Path.cwd()
        diagnostics += confine_paths(module, roots, importer_dir)
        for imp in module.imports:
            target = _resolve_import(roots, importer_dir, imp)
            if isinstance(target, Diagnostic):
                diagnostics.append(target)
                continue
            key = str(target)
            if key not in program.modules:
                imported = _read(target)
                if isinstance(imported, _ReadProblem) and imported.diagnostic is not None:
                    diagnostics.append(imported.diagnostic)
                    continue
                if isinstance(imported, _ReadProblem):
                    message = f"cannot read imported file {imp.path}: {imported.message}"
                    diagnostics.append(Diagnostic(code="SF507", span=imp.span, message=message))
                    continue
                pending.append((key, imported))
            if imp.alias:
                aliases[imp.alias] = key
            else:
                plain.append(key)
        program.aliases[file] = aliases
        program.plain_imports[file] = plain
    if diagnostics:
        raise CompileError(diagnostics=diagnostics, sources=program.sources)
    return program


def _resolve_import(roots: ImportRoots, importer_dir: Path, imp: ast.Import) -> Path | Diagnostic:
    """The file an import names, refused (without reading it) when it lies outside the allowed roots."""
    candidates = roots.candidates(importer_dir, imp.path)
    outside = None
    for candidate in candidates:
        try:
            real = candidate.resolve()
            if not roots.allows(real):
                outside = outside or candidate
            elif real.is_file():
                return real
        except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop: not found
            continue
    allowed = ", ".join(str(r) for r in (roots.main, *roots.search))
    if outside is not None:
        return Diagnostic(
            code="SF506", message=f"import outside the allowed directories: {imp.path}", span=imp.span,
            hint=f"imports may only read files under {allowed}; add a directory with --import-path or SFDSL_PATH")
    return Diagnostic(code="SF501", message=f"imported file not found: {imp.path}", span=imp.span,
                            hint=f"looked for {os.path.abspath(candidates[0])}")


def recipe_key(program: ParsedProgram, file: str, name: str) -> str:
    """The name a recipe is known by: bare in the main file, `file::name` elsewhere."""
    return name if file == program.main else f"{file}::{name}"
