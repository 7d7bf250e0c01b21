"""Every recipe of a .sf file, or of each .sf file directly inside a directory, under a unique name.

What `sfrun serve` and `sfrun mcp` expose. A recipe keeps its own name unless two
files declare it; then both become ``{file stem}{separator}{recipe}``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sfdsl.api import Recipe, load
from sfdsl.errors import SourceNotFoundError

__all__ = ["load_recipe_set"]


def load_recipe_set(path: str | Path, *, separator: str = ":",
                    import_path: Sequence[str | Path] = ()) -> list[tuple[str, Recipe]]:
    """(unique name, recipe) for every recipe under ``path``, files in name order.

    Raises:
        SourceNotFoundError: when the path does not exist or a directory holds no .sf file.
        CompileError: when a file does not compile.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.sf"))
        if not files:
            raise SourceNotFoundError(f"no .sf files in {root}")
    elif root.is_file():
        files = [root]
    else:
        raise SourceNotFoundError(f"no such file or directory: {root}")
    found: list[tuple[Path, Recipe]] = []
    for file in files:
        program = load(file, import_path=import_path)
        found.extend((file, program.recipe(name)) for name in program.names)
    clashes = Counter(recipe.name for _, recipe in found)
    return [(f"{file.stem}{separator}{recipe.name}" if clashes[recipe.name] > 1 else recipe.name, recipe)
            for file, recipe in found]
