"""A real SmolLM2 smoke run of `sfrun tune`: chain_of_thought and self_consistency on 20 generated items,
4 trials; it writes the report, and its reproduce command gives the printed test figure."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.real_model
def test_tune_smoke_on_the_real_model(tmp_path: Path) -> None:
    env = {**os.environ, "SFDSL_CACHE_DIR": str(tmp_path / "cache")}  # a fresh cache: every call runs the model
    data = tmp_path / "arith.jsonl"
    made = subprocess.run([sys.executable, "-m", "sfdsl.cli", "data", "make", "arithmetic", "--n", "20", "--seed", "5",
                           "--difficulty", "1"], capture_output=True, text=True, check=True, env=env)
    data.write_text(made.stdout)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "sfdsl.cli", "tune", str(REPO / "recipes" / "chain_of_thought.sf"),
         f"{REPO / 'recipes' / 'self_consistency.sf'}:self_consistency", "--data", str(data), "--space", "n=1..3",
         "-i", "max_tokens=32", "--trials", "4", "--split", "10:10", "--metric", "numeric", "-k", "4",
         "--report", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(proc.stdout)  # shown with -s: the front, the choice, the test figure and the command
    doc = json.loads((out / "tune.json").read_text())
    assert len([t for t in doc["trials"] if t["state"] in ("complete", "stopped")]) == 4
    assert (out / "report.html").stat().st_size > 10_000 and (out / "best.json").exists()
    chosen = doc["chosen"]
    test = chosen["test"]["summary"]
    assert test["items"] == 10 and test["failures"]["count"] == 0
    printed = re.search(r"test: accuracy (\d\.\d{3})", proc.stdout)
    assert printed and float(printed.group(1)) == round(test["accuracy"], 3)

    command = re.search(r"reproduce: (sfrun eval .*)", proc.stdout)
    assert command and command.group(1).strip() == chosen["reproduce"]
    argv = shlex.split(chosen["reproduce"])
    again = subprocess.run([sys.executable, "-m", "sfdsl.cli", *argv[1:]], capture_output=True, text=True,
                           timeout=600, env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    metrics = json.loads((out / "reproduce" / "metrics.json").read_text())
    (run,) = metrics["recipes"].values()
    assert run["summary"]["accuracy"] == test["accuracy"] and run["summary"]["items"] == 10
    # the same configuration, not just the same score: its cost per item is the tuned figure's too
    assert run["summary"]["cost"]["tokens_per_item"] == test["cost"]["tokens_per_item"]
