"""`sfrun fmt`: rewrites files in place, --check exits 1 on a change, --diff prints it, '-' filters stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sfdsl.cli import main

MESSY = "recipe r(){\n    return answer:1\n}\n"
CLEAN = "recipe r() {\n  return answer: 1\n}\n"


def test_formats_in_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.sf"
    path.write_text(MESSY)
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == CLEAN
    assert "reformatted" in capsys.readouterr().err


def test_check_exits_1_and_names_the_fix_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.sf"
    path.write_text(MESSY)
    assert main(["fmt", "--check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"would reformat {path}" in err and f"sfrun fmt {path}" in err
    assert path.read_text() == MESSY
    path.write_text(CLEAN)
    assert main(["fmt", "--check", str(tmp_path)]) == 0


def test_diff_prints_the_change_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.sf"
    path.write_text(MESSY)
    assert main(["fmt", "--diff", str(path)]) == 0
    out = capsys.readouterr().out
    assert "-recipe r(){" in out and "+recipe r() {" in out
    assert path.read_text() == MESSY


def test_syntax_errors_exit_1_with_located_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.sf"
    path.write_text("recipe r( {\n")
    assert main(["fmt", str(path)]) == 1
    assert f"{path}:1:" in capsys.readouterr().err


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["fmt", str(tmp_path / "nope.sf")]) == 2


def test_stdin_to_stdout(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == CLEAN
