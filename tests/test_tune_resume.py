"""Resume: SIGKILL a real `tune` subprocess mid-search, rerun it: the same front, no finished pair rerun."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tune_support import RECIPES, WORDS, SyntheticBackend, make_items, run_tune, write_items

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

TESTS = Path(__file__).resolve().parent

# A test-only entry: the real `tune` command body on the synthetic backend, logging every model call.
ENTRY = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from tune_support import SyntheticBackend, make_items, run_tune
    rows = make_items(56, seed=11)
    backend = SyntheticBackend(rows, latency=0.01, log=Path(sys.argv[1]))
    sys.exit(run_tune(sys.argv[2:], backend))
    """
)


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _front(out: Path) -> list[dict]:
    points = json.loads((out / "front.json").read_text())
    for p in points:
        p["cost_per_item"].pop("wall_s")
    return points


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_sigkill_mid_search_then_resume(tmp_path: Path) -> None:
    rows = make_items(56, seed=11)
    data = write_items(tmp_path / "d.jsonl", rows)
    argv = [f"{RECIPES / 'self_consistency.sf'}:self_consistency", "--data", str(data), "--space", "n=1..12",
            "-i", f"max_tokens={WORDS}", "--split", "40:16", "--metric", "numeric", "--trials", "6",
            "--baseline", "none", "-k", "4"]

    reference = tmp_path / "reference"
    assert run_tune([*argv, "--out", str(reference)], SyntheticBackend(rows)) == 0

    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY.format(tests=str(TESTS)))
    out = tmp_path / "out"
    db = out / "results.sqlite"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first_log, second_log = tmp_path / "calls-1.log", tmp_path / "calls-2.log"
    cmd = [sys.executable, str(entry)]
    proc = subprocess.Popen([*cmd, str(first_log), *argv, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _rows(db) < 60 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be killed"
    survived = _rows(db)
    assert survived >= 60

    done = subprocess.run([*cmd, str(second_log), *argv, "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert _front(out) == _front(reference)
    assert json.loads((out / "best.json").read_text()) == json.loads((reference / "best.json").read_text())
    # Every model call of the rerun made a result that was not stored before the kill: none was repeated.
    rerun_calls = len(second_log.read_text().splitlines())
    assert rerun_calls == _rows(db) - survived
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT SUM(calls) FROM results").fetchone()[0] == _rows(db)


def test_a_trial_killed_before_its_parameters_is_dropped(tmp_path: Path) -> None:
    """Killed between Optuna's proposal and its parameters: the trial fails, and the search goes on as if
    it had never been proposed (same front as an uninterrupted run)."""
    import optuna

    from sfdsl.tune.search import STUDY_FILE

    rows = make_items(30, seed=13)
    data = write_items(tmp_path / "d.jsonl", rows)
    argv = [f"{RECIPES / 'self_consistency.sf'}:self_consistency", "--data", str(data), "--space", "n=1..12",
            "-i", f"max_tokens={WORDS}", "--split", "20:10", "--metric", "numeric", "--baseline", "none"]
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert run_tune([*argv, "--trials", "4", "--out", str(reference)], SyntheticBackend(rows)) == 0
    assert run_tune([*argv, "--trials", "2", "--out", str(out)], SyntheticBackend(rows)) == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / STUDY_FILE}")
    (summary,) = optuna.get_all_study_summaries(storage)
    optuna.load_study(study_name=summary.study_name, storage=storage).ask()  # proposed, then "killed"
    assert run_tune([*argv, "--trials", "4", "--out", str(out)], SyntheticBackend(rows)) == 0
    assert _front(out) == _front(reference)
    states = [t.state for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials]
    assert optuna.trial.TrialState.FAIL in states
