"""The library is silent until an application configures logging; `sfrun -v` logs events on stderr only."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.log import get_logger
from tests.conftest import REPO, events

RECIPE = """
recipe echo(q: str) -> answer {
  prompt p = "Say {{ q }}"
  said = generate p (max_tokens: 8)
  return said
}
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_a_library_run_prints_nothing_on_stdout_or_stderr() -> None:
    code = f"""
import sfdsl
from sfdsl import ScriptedBackend
program = sfdsl.compile({RECIPE!r})
assert program.recipe().run(q="hi", backend=ScriptedBackend(["hi"])).answer == "hi"
try:
    program.recipe().run(q="hi", backend=ScriptedBackend([]))
except sfdsl.SfdslError:
    pass
from sfdsl.log import get_logger
get_logger("sfdsl.test").warning("warned_on_purpose")
"""
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_events_reach_an_application_that_configures_stdlib_logging() -> None:
    code = f"""
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(message)s")
import sfdsl
from sfdsl import ScriptedBackend
sfdsl.compile({RECIPE!r}).recipe().run(q="hi", backend=ScriptedBackend(["hi"]))
"""
    done = _python(code)
    assert done.returncode == 0 and done.stdout == ""
    assert "sfdsl.runtime.context" in done.stderr and "run_finished" in done.stderr


def test_events_are_stdlib_records_under_sfdsl_carrying_the_run_id(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sfdsl"):
        result = sfdsl.compile(RECIPE).recipe().run(q="hi", backend=ScriptedBackend(["hi"]))
    logged = events(caplog)
    assert {e["event"] for e in logged} >= {"run_started", "run_finished"}
    assert all(r.name.startswith("sfdsl") for r in caplog.records)
    assert all(e["run_id"] == result.run_id for e in logged)
    assert "node_started" not in {e["event"] for e in logged}  # a debug event, filtered at info


def test_names_outside_the_package_are_kept_under_sfdsl(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sfdsl"):
        get_logger("plugin").info("plugin_loaded", n=1)
    assert [r.name for r in caplog.records] == ["sfdsl.plugin"]
    assert events(caplog) == [{"event": "plugin_loaded", "n": 1, "level": "info"}]


def _sfrun(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "echo.sf").write_text(RECIPE)
    (tmp_path / "script.json").write_text(json.dumps(["hi"]))
    argv = [sys.executable, "-m", "sfdsl.cli", *args, "run", str(tmp_path / "echo.sf"), "-i", "q=hi",
            "--backend", f"scripted:{tmp_path / 'script.json'}"]
    return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120)


def test_sfrun_verbose_logs_events_on_stderr_never_stdout(tmp_path: Path) -> None:
    done = _sfrun("-v", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "run_finished" in done.stderr and "run_finished" not in done.stdout
    assert "node_started" not in done.stderr  # -v is info; -vv adds debug events
    assert "answer" in done.stdout
    debug = _sfrun("-vv", tmp_path=tmp_path)
    assert "node_started" in debug.stderr and "node_started" not in debug.stdout


def test_sfrun_logs_no_info_events_by_default(tmp_path: Path) -> None:
    done = _sfrun(tmp_path=tmp_path)
    assert done.returncode == 0 and done.stderr == ""


@pytest.mark.real_model
def test_a_real_model_run_prints_nothing_either() -> None:
    done = _python(f"import sfdsl\nsfdsl.compile({RECIPE!r}).recipe().run(q='hi')\n")
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
