"""Confinement of the files a recipe names (script files, GGUF models) under the same rule as imports.

A path parameter of a model declaration (each backend lists its own in ``BackendDecl.paths``) must be a string
literal (SF509) naming a file inside the allowed directories: the main recipe's directory tree, the search path
(``--import-path`` and ``$SFDSL_PATH``), and for GGUF models also the models directory (``$SFDSL_MODELS_DIR``,
else ``~/models``), the model aliases of the models config and the default model's package. Anything else is
SF508 and the file is never opened. A relative path resolves next to the recipe's file, then on the search path;
the literal is replaced by the resolved path, so the run opens exactly the file that was checked.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sfdsl import ast
from sfdsl.declarations import BACKENDS
from sfdsl.diagnostics import Diagnostic
from sfdsl.errors import ModelNotFoundError
from sfdsl.models import DEFAULT_ALIASES, EMBEDDED_PACKAGE, load_aliases


class ImportRoots(Protocol):
    """The directories imports may read (``sfdsl.program.ImportRoots``), named by what this module reads of them,
    so that the program loader and this module do not import each other."""

    @property
    def main(self) -> Path: ...

    @property
    def search(self) -> tuple[Path, ...]: ...

    def allows(self, real: Path) -> bool: ...

#: The environment variable naming the models directory; ``~/models`` when unset.
MODELS_DIR_ENV = "SFDSL_MODELS_DIR"


def models_dir() -> Path:
    """Where GGUF models a recipe names may also live: ``$SFDSL_MODELS_DIR`` or ``~/models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or "~/models").expanduser()


@dataclass(frozen=True)
class _ModelRoots:
    """What a GGUF path may also name, beyond the import roots."""

    aliases: frozenset[str]
    files: frozenset[Path]
    dirs: tuple[Path, ...]


def confine_paths(module: ast.Module, roots: ImportRoots, importer_dir: Path) -> list[Diagnostic]:
    """Check, resolve and pin every path a module's model declarations name; the problems found.

    Args:
        roots: the import roots of the program.
        importer_dir: the directory of the module's file (relative paths start there).
    """
    problems: list[Diagnostic] = []
    models: _ModelRoots | None = None
    for decl in _model_decls(module):
        backend = BACKENDS.get(decl.backend)
        if backend is None or not backend.paths:
            continue
        for i, arg in enumerate(decl.args):
            if arg.name not in backend.paths:
                continue
            value = arg.value
            if not (isinstance(value, ast.Const) and isinstance(value.value, str)):
                problems.append(Diagnostic(
                    code="SF509", message=f"`{arg.name}:` of model '{decl.name}' must be a string literal",
                    span=value.span, hint="write the path in quotes, e.g. (file: \"replies.json\")"))
                continue
            if backend.model_files:
                models = models or _model_roots()
                if value.value in models.aliases or value.value.strip().lower() in DEFAULT_ALIASES:
                    continue  # a name, not a path
            found = _resolve(value.value, roots, importer_dir, models if backend.model_files else None)
            if found is None:
                allowed = ", ".join(str(r) for r in _dirs(roots, models if backend.model_files else None))
                problems.append(Diagnostic(
                    code="SF508", message=f"`{arg.name}:` of model '{decl.name}' names a file outside the allowed "
                                          f"directories: {_shown(value.value)}", span=value.span,
                    hint=f"files a recipe names must lie under {allowed}; an operator can add a directory with "
                         "--import-path or SFDSL_PATH"))
                continue
            decl.args[i] = arg.model_copy(update={"value": value.model_copy(update={"value": str(found)})})
    return problems


def _resolve(text: str, roots: ImportRoots, importer_dir: Path, models: _ModelRoots | None) -> Path | None:
    """The allowed file a path names (an existing one first), or None when every reading of it is outside."""
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # `~user/...` for a user with no home directory: no reading of it is allowed
        return None
    candidates = [path] if path.is_absolute() else [importer_dir / path, *(root / path for root in roots.search)]
    allowed: Path | None = None
    for candidate in candidates:
        try:
            real = candidate.resolve()
            inside = roots.allows(real) or (models is not None and _in_models(real, models))
            if inside and real.is_file():
                return real
        except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop: not this one
            continue
        if inside and allowed is None:
            allowed = real
    return allowed


def _shown(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _in_models(real: Path, models: _ModelRoots) -> bool:
    return real in models.files or any(real.is_relative_to(d) for d in models.dirs)


def _dirs(roots: ImportRoots, models: _ModelRoots | None) -> list[Path]:
    return [roots.main, *roots.search, *(models.dirs if models else ())]


def _model_roots() -> _ModelRoots:
    """The aliases, alias files and directories a GGUF path may use; a broken models config adds none."""
    try:
        aliases = load_aliases()
    except ModelNotFoundError:
        aliases = {}
    files = set()
    for target in aliases.values():
        try:
            files.add(target.resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    dirs = [models_dir()]
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(location) for location in spec.submodule_search_locations]
    resolved = []
    for d in dirs:
        try:
            resolved.append(d.resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return _ModelRoots(aliases=frozenset(aliases), files=frozenset(files), dirs=tuple(resolved))


def _model_decls(module: ast.Module) -> list[ast.ModelDecl]:
    """Every model declaration of a module, at any depth, found without recursion."""
    found: list[ast.ModelDecl] = []
    stack: list[Any] = [recipe.body for recipe in module.recipes]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, ast.ModelDecl):
            found.append(node)
        elif isinstance(node, ast.Node):
            stack.extend(getattr(node, name) for name in type(node).model_fields if name != "span")
    return found
