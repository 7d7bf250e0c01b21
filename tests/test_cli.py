"""The sfrun command line: run, check, graph; clear one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sfdsl.cli import main

REPO = Path(__file__).resolve().parent.parent
OK = Path(__file__).parent / "fixtures" / "ok"
ERRORS = Path(__file__).parent / "fixtures" / "errors"


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.json"
    path.write_text(json.dumps(["The answer is 4", "The answer is 5", "The answer is 4", "hmm", "x"]))
    return path


def test_run_prints_answer_and_cost(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(OK / "self_consistency.sf"), "-i", "question=2+2", "--backend", f"scripted:{script}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "answer" in out and " 4" in out and "0.667" in out and "bound" in out
    assert "1 calls (1 requests, 0 cached)" in out


def test_run_json_with_inputs_file_and_trace(script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"question": "{{ 7*7 }}", "n": 3}))
    trace = tmp_path / "t.jsonl"
    code = main(["run", str(OK / "self_consistency.sf"), "--inputs-json", str(inputs), "--json", "--steps",
                 "--backend", f"scripted:{script}", "--trace", str(trace)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["answer"] == 4 and data["cost"]["calls"] == 1 and len(data["steps"]) == 3
    assert data["cost"]["requests"] == 1 and data["steps"][0]["cost"]["requests"] == 1
    assert trace.read_text().count("\n") >= 5


def test_max_tokens_that_cut_the_answer_short_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "long.json"
    script.write_text(json.dumps(["Let me think step by step about it. The answer is 4."] * 2))
    recipe = str(OK.parent.parent.parent / "recipes" / "chain_of_thought.sf")
    argv = ["run", recipe, "-i", "question=q", "--backend", f"scripted:{script}", "--max-tokens", "5"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answer"] is None and data["truncated"] is True
    assert main(argv) == 0
    assert "truncated" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "missing.sf"], "recipe file not found: missing.sf"),
        (["run", str(OK / "self_consistency.sf"), "nope"], "no recipe 'nope'"),
        (["run", str(OK / "self_consistency.sf"), "-i", "question=x", "-i", "n=lots"], "input 'n' must be int"),
        (["run", str(OK / "self_consistency.sf"), "-i", "qestion=x"], "did you mean 'question'"),
        (["run", str(OK / "self_consistency.sf"), "-i", "oops"], "write -i key=value"),
        (["run", str(OK / "self_consistency.sf"), "-i", "question=x", "--backend", "scripted:/nope.json"],
         "script file not found"),
        (["run", str(OK / "self_consistency.sf"), "-i", "question=x", "--model", "/nope/model.gguf"],
         "/nope/model.gguf"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("sfrun:")]) == 1


def test_check_prints_bounds_and_fails_on_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(OK / "self_consistency.sf")]) == 0
    out = capsys.readouterr().out
    assert "cost bound: ≤ 1 model calls, ≤ 1280 generated tokens, ≤ 5 sequences at once" in out
    assert main(["check", str(OK / "self_consistency.sf"), "-i", "n=2"]) == 0
    assert "≤ 512 generated tokens" in capsys.readouterr().out
    assert main(["check", str(ERRORS / "type_mismatch.sf"), str(OK / "self_consistency.sf")]) == 1
    out = capsys.readouterr().out
    assert "error[SF305]" in out and "tempreature" in out and "ok (0 warnings)" in out


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "text"])
def test_graph_formats(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(OK / "constructs.sf"), "everything", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "fixed" in out and "refine" in out


def test_compile_error_exit_1_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sf"
    bad.write_text("recipe r( {")
    proc = subprocess.run([sys.executable, "-m", "sfdsl.cli", "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "bad.sf:1:11: error[" in proc.stderr and "Traceback" not in proc.stderr


def test_help_for_each_command() -> None:
    for command in ("run", "check", "graph", "eval", "data"):
        proc = subprocess.run([sys.executable, "-m", "sfdsl.cli", command, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: sfrun" in proc.stdout


def test_any_run_failure_is_exit_3_with_one_located_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from sfdsl.runtime.backends.scripted import ScriptedBackend

    async def broken(self: object, request: object) -> object:
        raise ValueError("driver exploded")

    monkeypatch.setattr(ScriptedBackend, "generate", broken)
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    argv = ["run", str(OK / "self_consistency.sf"), "-i", "question=x", "--backend", f"scripted:{empty}"]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "self_consistency.sf:" in err and "ValueError: driver exploded" in err
    assert main(["-v", *argv]) == 3
    verbose = capsys.readouterr().err
    assert "Traceback" in verbose and verbose.rstrip().splitlines()[-1].startswith("sfrun: run failed:")


def test_an_exhausted_script_is_exit_3_without_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "run", str(OK / "self_consistency.sf"), "-i",
                           "question=x", "--backend", f"scripted:{empty}"], capture_output=True, text=True)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "self_consistency.sf:" in done.stderr and "no reply left" in done.stderr


@pytest.mark.parametrize(("flags", "level"), [(["-q"], "ERROR"), ([], "WARNING"), (["-v"], "INFO"), (["-vv"], "DEBUG")])
def test_verbosity_sets_the_level_of_the_sfdsl_logger(flags: list[str], level: str, script: Path) -> None:
    import logging

    assert main([*flags, "run", str(OK / "self_consistency.sf"), "-i", "question=2+2", "--json",
                 "--backend", f"scripted:{script}"]) == 0
    logger = logging.getLogger("sfdsl")
    assert logging.getLevelName(logger.level) == level
    assert sum(getattr(h, "sfrun_console", False) for h in logger.handlers) == 1  # never stacked


def test_piped_output_is_not_wrapped_at_the_terminal_width(tmp_path: Path) -> None:
    """`sfrun run ... | grep cost` in an 80-column terminal: rich would size the table to the terminal."""
    import fcntl
    import pty
    import struct
    import termios

    reply = "The answer is 4. " + "Counting the apples one by one is easy. " * 4
    script = tmp_path / "long.json"
    script.write_text(json.dumps({"": reply}))
    terminal, stdin = pty.openpty()  # stdin stays a terminal of 80 columns, as in a shell pipeline
    fcntl.ioctl(stdin, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    try:
        done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "run", str(REPO / "recipes/chain_of_thought.sf"),
                               "-i", "question=How many apples?", "--backend", f"scripted:{script}", "--no-cache"],
                              stdin=stdin, capture_output=True, text=True, env=env)
    finally:
        os.close(stdin)
        os.close(terminal)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("response") and reply.strip() in line for line in lines)
    assert len([line for line in lines if line.startswith("cost")]) == 1 and len(lines) == 5
