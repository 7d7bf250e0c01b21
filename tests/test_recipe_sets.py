"""load_recipe_set: every recipe of a file or directory, clashing names prefixed by file, imports confined."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfdsl.errors import CompileError, SourceNotFoundError
from sfdsl.recipe_sets import load_recipe_set

BODY = "recipe {name}(question: str) -> answer {{\n  return question\n}}\n"


def test_a_name_two_files_declare_gets_each_file_stem(tmp_path: Path) -> None:
    (tmp_path / "a.sf").write_text(BODY.format(name="echo") + BODY.format(name="only_a"))
    (tmp_path / "b.sf").write_text(BODY.format(name="echo"))
    (tmp_path / "notes.txt").write_text("not a recipe")
    assert [name for name, _ in load_recipe_set(tmp_path)] == ["a:echo", "only_a", "b:echo"]
    named = dict(load_recipe_set(tmp_path, separator="."))
    assert sorted(named) == ["a.echo", "b.echo", "only_a"]
    assert Path(named["b.echo"].file).name == "b.sf"


def test_one_file_gives_its_recipes_under_their_own_names(tmp_path: Path) -> None:
    (tmp_path / "a.sf").write_text(BODY.format(name="echo") + BODY.format(name="again"))
    assert [name for name, _ in load_recipe_set(tmp_path / "a.sf")] == ["echo", "again"]


def test_a_missing_path_and_an_empty_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no such file or directory"):
        load_recipe_set(tmp_path / "missing.sf")
    with pytest.raises(SourceNotFoundError, match=r"no \.sf files"):
        load_recipe_set(tmp_path)


def test_imports_read_the_import_path_only_when_given(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "lib.sf").write_text(BODY.format(name="helper"))
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "main.sf").write_text('import "lib.sf" as lib\n' + BODY.format(name="main"))
    with pytest.raises(CompileError):
        load_recipe_set(tmp_path / "served")
    assert [name for name, _ in load_recipe_set(tmp_path / "served", import_path=[tmp_path / "shared"])] == ["main"]
