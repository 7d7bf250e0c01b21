"""`sfrun serve` refuses bad settings with exit code 2 and one clear line, before it binds a port."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_support import RECIPES

from sfdsl.cli import main


def test_input_no_recipe_declares_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(RECIPES), "-i", "bogus=1", "--backend", "scripted:missing.json"]) == 2
    assert "no served recipe has input(s) bogus" in capsys.readouterr().err


def test_fixed_input_of_the_wrong_type_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(RECIPES / "self_consistency.sf"), "-i", "n=many"]) == 2
    assert "input 'n' must be int" in capsys.readouterr().err


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--max-n", "0"], ["--max-concurrency", "-1"], ["--timeout", "soon"]])
def test_bad_limits_are_refused_by_the_parser(option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", str(RECIPES), *option])
    assert exited.value.code == 2 and option[0] in capsys.readouterr().err


def test_missing_script_file_fails_at_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(RECIPES), "--backend", "scripted:missing.json"]) == 2
    assert "script file not found" in capsys.readouterr().err
