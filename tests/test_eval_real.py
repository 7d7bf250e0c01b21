"""A real-model evaluation: two recipes on 10 generated arithmetic items through `sfrun eval`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.real_model
def test_eval_two_recipes_on_generated_items(tmp_path: Path) -> None:
    data = tmp_path / "arith.jsonl"
    made = subprocess.run([sys.executable, "-m", "sfdsl.cli", "data", "make", "arithmetic", "--n", "10", "--seed", "3",
                           "--difficulty", "1"], capture_output=True, text=True, check=True)
    data.write_text(made.stdout)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "sfdsl.cli", "eval", str(REPO / "recipes" / "chain_of_thought.sf"),
         str(REPO / "recipes" / "self_consistency.sf"), "--data", str(data), "--metric", "numeric",
         "-i", "max_tokens=48", "--concurrency", "5", "--out", str(out), "--no-cache"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["recipes"]) == {"chain_of_thought", "self_consistency"}
    for name, run in metrics["recipes"].items():
        summary = run["summary"]
        assert summary["items"] == 10 and summary["failures"]["count"] == 0, name
        assert 0.0 <= summary["accuracy"] <= 1.0
        assert summary["cost"]["total_calls"] == 10  # one generate request per item, n samples batched
    cot, sc = (metrics["recipes"][k]["summary"]["cost"] for k in ("chain_of_thought", "self_consistency"))
    assert sc["completion_tokens_per_item"] > cot["completion_tokens_per_item"]  # 5 samples cost more than 1
    assert [row["label"] for row in metrics["comparison"]] == ["chain_of_thought", "self_consistency"]
    assert "accuracy" in proc.stdout and "self_consistency" in proc.stdout
