"""``sfrun eval --executor ray``: a real local Ray cluster, workers killed mid-run, the driver SIGKILLed and rerun."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfdsl.cli import main
from sfdsl.eval.data import build_items, load_rows
from sfdsl.eval.generate import arithmetic
from sfdsl.eval.glue import load_target, shared_pool
from sfdsl.eval.metrics import get_metric
from sfdsl.eval.ray_executor import ExecutorError, RayExecutor, RaySettings, import_ray
from sfdsl.eval.runner import EvalSpec, run_eval
from sfdsl.eval.store import ItemRecord, ResultStore
from sfdsl.runtime.backends.scripted import ScriptedBackend

ray = pytest.importorskip("ray")

RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "chain_of_thought.sf")
LIGHT = ["--worker-cpus", "0.5"]  # two workers fit the test cluster's 2 CPUs with room for a second driver's


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One local Ray cluster for the whole module; yields its address for other drivers."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _dataset(tmp_path: Path, n: int) -> tuple[Path, dict[str, str]]:
    """n arithmetic rows and a script answering every third one wrong (keyed by question, so order-free)."""
    rows = arithmetic(n, seed=3)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = {
        r["question"]: f"Step by step. The answer is {r['answer'] + (i % 3 == 0)}." for i, r in enumerate(rows)
    }
    return data, script


def _stored(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT run_key, item_id, sample, answer, correct, error FROM results ORDER BY item_index, sample"
        ).fetchall()


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_ray_eval_matches_local_run(cluster: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's check: chain_of_thought on 24 generated items, scripted, with and without --executor ray."""
    data, script = _dataset(tmp_path, 24)
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps({"replies": script}))
    base = ["eval", RECIPE, "--data", str(data), "--backend", f"scripted:{script_file}", "-k", "4"]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    assert main([*base, "--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2", *LIGHT]) == 0
    capsys.readouterr()

    local = json.loads((tmp_path / "local" / "metrics.json").read_text())["recipes"]["chain_of_thought"]
    remote = json.loads((tmp_path / "ray" / "metrics.json").read_text())["recipes"]["chain_of_thought"]
    assert remote["new"] == 24 and remote["run_key"] == local["run_key"]
    assert remote["summary"]["accuracy"] == local["summary"]["accuracy"] == pytest.approx(16 / 24)
    for key in ("accuracy_ci", "n_items", "failed", "tokens_per_item", "calls_per_item"):
        assert remote["summary"].get(key) == local["summary"].get(key), key
    assert _stored(tmp_path / "ray" / "results.sqlite") == _stored(tmp_path / "local" / "results.sqlite")


def _eval_on_ray(
    tmp_path: Path, n: int, make_backend: Any, settings: RaySettings, *, kill_after: int | None = None
) -> tuple[list[ItemRecord], list[int], list[int]]:
    """run_eval of chain_of_thought over n items on Ray workers, SIGKILLing the first worker once
    ``kill_after`` records are in; returns the records and the worker pids before and after."""
    data, _ = _dataset(tmp_path, n)
    target = load_target(RECIPE, shared_pool(ScriptedBackend([])))
    items = build_items(load_rows(data), input_types=target.input_types, required=target.required, gold="answer")
    spec = EvalSpec(run_key="k", label="cot", matcher=get_metric("exact"))
    before: list[int] = []
    seen: list[ItemRecord] = []

    class KillingProgress:
        def start(self, label: str, total: int, done: int) -> None: ...

        def update(self, record: ItemRecord) -> None:
            seen.append(record)
            if len(seen) == kill_after:
                os.kill(before[0], signal.SIGKILL)

        def finish(self) -> None: ...

    async def go() -> tuple[list[ItemRecord], list[int], list[int]]:
        async with RayExecutor(make_backend, settings) as executor:
            before.extend(await executor.worker_pids())
            with ResultStore(tmp_path / "r.sqlite") as store:
                run = executor.for_target(target)
                out = await run_eval(items, run, spec, store=store, progress=KillingProgress())
            return out.records, before, await executor.worker_pids()

    records, pids_before, pids_after = asyncio.run(go())
    assert len(seen) == len(records)  # each record was handed over once
    return records, pids_before, pids_after


def test_killed_worker_items_are_retried_once_each(cluster: str, tmp_path: Path) -> None:
    n = 30
    _, script = _dataset(tmp_path, n)
    settings = RaySettings(workers=2, cpus=0.5, concurrency=3)
    make_backend = functools.partial(ScriptedBackend, script, latency=0.15)  # sfdsl's own: workers can import it
    records, before, after = _eval_on_ray(tmp_path, n, make_backend, settings, kill_after=6)
    assert before[0] not in after and len(after) == 2  # the dead worker was replaced
    assert sorted(r.item_index for r in records) == list(range(n))  # every item, once
    assert all(r.error is None for r in records)
    assert sum(r.correct for r in records) == n - len(range(0, n, 3))
