"""Loading programs: imports confined to the recipe's tree or the search path; unreadable files are errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sfdsl
from sfdsl.errors import CompileError
from sfdsl.program import load_program

SECRET = "root:x:0:0:TOP-SECRET-LINE:/root:/bin/bash"
RECIPE = 'recipe main() -> answer { return answer: 1 }\n'
LIB = 'recipe helper() -> answer { return answer: 2 }\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/project/main dir, tmp/outside/secret.sf (a file outside it), tmp/shared/lib.sf (a search dir)."""
    (tmp_path / "project" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.sf").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "lib.sf").write_text(LIB, encoding="utf-8")
    (tmp_path / "project" / "sub" / "inner.sf").write_text(LIB, encoding="utf-8")
    return tmp_path


def _write(tree: Path, imports: str, name: str = "main.sf") -> Path:
    path = tree / "project" / name
    path.write_text(imports + "\n" + RECIPE, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "target",
    ["/etc/passwd", "{tree}/outside/secret.sf", "../outside/secret.sf", "sub/../../outside/secret.sf",
     "../../../../../../../../etc/passwd", "link.sf", "../project/../outside/secret.sf"],
)
def test_imports_outside_the_tree_are_refused_without_reading(tree: Path, target: str) -> None:
    (tree / "project" / "link.sf").symlink_to(tree / "outside" / "secret.sf")
    main = _write(tree, f'import "{target.format(tree=tree)}"')
    with pytest.raises(CompileError) as info:
        load_program(main)
    text = info.value.render()
    assert "SF506" in text and "import outside the allowed directories" in text
    assert "TOP-SECRET" not in text and "root:" not in text
    assert set(info.value.sources) == {str(main)}  # nothing outside was read


def test_sfrun_check_on_etc_passwd_prints_no_content(tree: Path) -> None:
    main = _write(tree, 'import "/etc/passwd"\nimport "../outside/secret.sf" as s')
    done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "check", str(main)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout.count("SF506") == 2
    assert "root:" not in done.stdout + done.stderr and "TOP-SECRET" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_imports_inside_the_tree_resolve(tree: Path) -> None:
    main = _write(tree, 'import "sub/inner.sf" as inner\nimport "./sub/../sub/inner.sf"')
    program = load_program(main)
    assert str((tree / "project" / "sub" / "inner.sf").resolve()) in program.modules


def test_search_path_from_argument_and_environment(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = _write(tree, 'import "lib.sf" as lib')
    with pytest.raises(CompileError, match="SF501"):
        load_program(main)
    assert str((tree / "shared" / "lib.sf").resolve()) in load_program(main, import_path=[tree / "shared"]).modules
    monkeypatch.setenv("SFDSL_PATH", os.pathsep.join(["/nonexistent", str(tree / "shared")]))
    assert sfdsl.load(main).names == ["main"]
    relative = _write(tree, 'import "../shared/lib.sf"', name="rel.sf")
    assert load_program(relative).modules  # ../shared is on the search path now


def test_search_path_does_not_open_the_rest_of_the_disk(tree: Path) -> None:
    main = _write(tree, 'import "../../outside/secret.sf"')
    with pytest.raises(CompileError, match="SF506") as info:
        load_program(main, import_path=[tree / "shared"])
    assert "TOP-SECRET" not in info.value.render()


def test_sfrun_import_path_option(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sfdsl.cli import main as sfrun

    main = _write(tree, 'import "lib.sf" as lib')
    assert sfrun(["check", str(main)]) == 1
    assert sfrun(["check", "--import-path", str(tree / "shared"), str(main)]) == 0
    assert "main.sf: ok" in capsys.readouterr().out


def test_non_utf8_recipe_is_a_located_compile_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.sf"
    path.write_bytes(b'recipe r() -> answer {\n  return answer: "caf\xe9"\n}\n')
    with pytest.raises(CompileError) as info:
        load_program(path)
    assert info.value.render().startswith(f"{path}:2:22: error[SF507]: cannot read {path}: not UTF-8 text (byte 0xe9")


def test_non_utf8_import_is_a_compile_error_at_the_import(tree: Path) -> None:
    (tree / "project" / "bad.sf").write_bytes(b"\xff\xfe" + LIB.encode("utf-16-le"))
    main = _write(tree, 'import "bad.sf"')
    done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "check", str(main)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{main}:1:1: error[SF507]: cannot read imported file bad.sf: not UTF-8 text" in done.stdout


def test_import_of_a_directory_is_not_found(tree: Path) -> None:
    main = _write(tree, 'import "sub"')
    with pytest.raises(CompileError, match="SF501"):
        load_program(main)


@pytest.mark.parametrize("name", ["x" * 5000 + ".sf", "loop1.sf", "a\\u0000b.sf", ""])
def test_unresolvable_import_names_are_not_found(tree: Path, name: str) -> None:
    (tree / "project" / "loop1.sf").symlink_to(tree / "project" / "loop2.sf")
    (tree / "project" / "loop2.sf").symlink_to(tree / "project" / "loop1.sf")
    main = _write(tree, f'import "{name}"')
    with pytest.raises(CompileError, match="SF501"):
        load_program(main)


def test_main_file_name_too_long_is_not_found() -> None:
    from sfdsl.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError):
        load_program("x" * 5000 + ".sf")
