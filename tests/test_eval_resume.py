"""Crash safety: SIGKILL a real `eval` subprocess mid-run, rerun it, lose and duplicate nothing."""

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

N_ITEMS = 40

# A test-only entry: the real `eval` command body with a slow fake recipe target.
ENTRY = textwrap.dedent(
    """
    import argparse, asyncio, sys
    from sfdsl.eval import cli
    from sfdsl.runtime.results import Cost, RunResult

    def fake_target(spec, backend, limits=None):
        async def run_item(inputs, seed):
            await asyncio.sleep(0.1)
            return RunResult(run_id="r", recipe="slow", answer=inputs["question"].upper(),
                             cost=Cost(calls=1, prompt_tokens=4, completion_tokens=1))
        return cli.Target(label="slow", fingerprint="slow-v1", input_types={"question": "str"},
                          required={"question"}, run_item=run_item)

    cli.load_target = fake_target
    parser = argparse.ArgumentParser()
    cli.add_eval_parser(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
    """
)


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"id": i, "question": f"q{i}", "answer": f"Q{i}"}) + "\n" for i in range(N_ITEMS))
    )
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    out = tmp_path / "out"
    cmd = [sys.executable, str(entry), "eval", "slow.sf", "--data", str(data), "--out", str(out), "-k", "4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = out / "results.sqlite"

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while _count(db) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    survived = _count(db)
    assert 8 <= survived < N_ITEMS

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())["recipes"]["slow"]
    assert metrics["resumed"] == survived and metrics["new"] == N_ITEMS - survived
    with sqlite3.connect(db) as con:
        ids = [r[0] for r in con.execute("SELECT item_id FROM results")]
    assert sorted(ids, key=int) == [str(i) for i in range(N_ITEMS)]  # none lost, none duplicated
    assert metrics["summary"]["accuracy"] == 1.0
