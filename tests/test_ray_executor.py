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


def _timeless(value: Any) -> Any:
    """metrics.json without wall-clock times, which differ between any two runs."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "wall" not in k}
    return value


def test_sfrun_eval_executor_ray_matches_local_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's check: 24 generated items, scripted, with and without --executor ray (plus a second
    recipe, so the comparison is compared too). The Ray run is a real ``sfrun`` process that starts and
    stops its own local cluster."""
    data, script = _dataset(tmp_path, 24)
    script_file = tmp_path / "script.json"
    script_file.write_text(json.dumps({"replies": script}))
    recipes = [RECIPE, RECIPE.replace("chain_of_thought", "self_consistency")]
    base = ["eval", *recipes, "--data", str(data), "--backend", f"scripted:{script_file}", "-k", "4"]
    assert main([*base, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    sfrun = [sys.executable, "-c", "from sfdsl.cli import main; raise SystemExit(main())"]
    ray_run = [*sfrun, *base, "--out", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2", *LIGHT]
    done = subprocess.run([*ray_run, "--report"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    remote = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert [r["new"] for r in remote["recipes"].values()] == [24, 24]
    assert remote["recipes"]["chain_of_thought"]["summary"]["accuracy"] == pytest.approx(16 / 24)
    assert _timeless(remote) == _timeless(local)  # same run keys, summaries and comparison
    assert _stored(tmp_path / "ray" / "results.sqlite") == _stored(tmp_path / "local" / "results.sqlite")
    assert "66.7%" in done.stdout and (tmp_path / "ray" / "report.html").exists()


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


# A test-only driver: the real `sfrun eval` command with a slow scripted backend (pickled to the workers by value).
DRIVER = textwrap.dedent(
    """
    import argparse, json, sys
    from sfdsl.eval import cli
    from sfdsl.runtime.backends.scripted import ScriptedBackend

    SCRIPT = json.loads(open(sys.argv[1]).read())

    def slow_backend(args):
        return ScriptedBackend(SCRIPT, latency=0.25)

    parser = argparse.ArgumentParser()
    cli.add_eval_parser(parser.add_subparsers(), make_backend=slow_backend)
    args = parser.parse_args(sys.argv[2:])
    sys.exit(args.func(args))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX-only")
def test_driver_sigkilled_mid_run_then_rerun_loses_and_duplicates_nothing(cluster: str, tmp_path: Path) -> None:
    n = 40
    data, script = _dataset(tmp_path, n)
    (tmp_path / "script.json").write_text(json.dumps(script))
    (tmp_path / "driver.py").write_text(DRIVER)
    out = tmp_path / "out"
    cmd = [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "script.json"), "eval", RECIPE]
    cmd += ["--data", str(data), "--out", str(out), "-k", "2", "--executor", f"ray:{cluster}", "--workers", "2", *LIGHT]
    db = out / "results.sqlite"

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(db) < 8 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-2000:]}"
    survived = _count(db)
    assert 8 <= survived < n

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["recipes"]["chain_of_thought"]
    assert metrics["resumed"] == survived and metrics["new"] == n - survived
    ids = [row[1] for row in _stored(db)]
    assert ids == [f"arith-{i:05d}" for i in range(n)]  # none lost, none duplicated
    assert metrics["summary"]["accuracy"] == pytest.approx(1 - len(range(0, n, 3)) / n)


def _crash_on_poison(prompt: str, index: int) -> str:
    """A reply function whose worker process dies on one item (as a segfaulting engine would)."""
    if "poison" in prompt:
        os._exit(1)
    return "The answer is 0."


def test_item_that_keeps_killing_workers_is_recorded_failed_once(
    cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker death retries the item elsewhere; after max_attempts it is a failed record, not a hang."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    try:
        data = tmp_path / "d.jsonl"
        data.write_text("".join(json.dumps({"question": q, "answer": 0}) + "\n" for q in ["a", "poison", "b", "c"]))
        target = load_target(RECIPE, shared_pool(ScriptedBackend([])))
        items = build_items(load_rows(data), input_types=target.input_types, required=target.required, gold="answer")
        spec = EvalSpec(run_key="k", label="cot", matcher=get_metric("numeric"))
        settings = RaySettings(workers=2, cpus=0.5, concurrency=1, max_attempts=2)
        make_backend = functools.partial(ScriptedBackend, _crash_on_poison)

        async def go() -> list[ItemRecord]:
            async with RayExecutor(make_backend, settings) as executor:
                with ResultStore(tmp_path / f"r{settings.workers}.sqlite") as store:
                    return (await run_eval(items, executor.for_target(target), spec, store=store)).records

        records = asyncio.run(go())
        settings = RaySettings(workers=1, cpus=0.5, concurrency=1, max_replacements=0)
        with pytest.raises(ExecutorError, match="every Ray eval worker died"):  # nothing left to retry on
            asyncio.run(go())
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert [(r.inputs["question"], r.error_kind) for r in records] == [
        ("a", None), ("poison", "WorkerDied"), ("b", None), ("c", None)
    ]
    assert "died 2 times" in (records[1].error or "")


def test_parse_address() -> None:
    assert RaySettings.parse_address("ray") is None
    assert RaySettings.parse_address("ray:auto") == "auto"
    assert RaySettings.parse_address("ray:ray://head:10001") == "ray://head:10001"
    for bad in ("dask", "ray:", "rays:x"):
        with pytest.raises(ExecutorError, match="use local, ray or ray:ADDRESS"):
            RaySettings.parse_address(bad)


def test_missing_ray_extra_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ExecutorError, match=r"pip install 'sfdsl\[ray\]'"):
        import_ray()
    data, script = _dataset(tmp_path, 2)
    (tmp_path / "s.json").write_text(json.dumps(script))
    argv = ["eval", RECIPE, "--data", str(data), "--backend", f"scripted:{tmp_path / 's.json'}", "--executor", "ray"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sfrun eval: error: --executor ray needs the ray extra: pip install 'sfdsl[ray]'"]


def test_bad_executor_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, script = _dataset(tmp_path, 2)
    (tmp_path / "s.json").write_text(json.dumps(script))
    argv = ["eval", RECIPE, "--data", str(data), "--backend", f"scripted:{tmp_path / 's.json'}"]
    assert main([*argv, "--out", str(tmp_path / "o"), "--executor", "dask"]) == 1
    assert main([*argv, "--out", str(tmp_path / "o"), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "unknown executor 'dask'" in err and "--workers and --worker-gpus need --executor ray" in err
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--executor", "ray", "--worker-cpus", "-1"])
    assert usage.value.code == 2 and "argument --worker-cpus: must be at least 0, got -1" in capsys.readouterr().err


def test_workers_that_cannot_fit_the_cluster_are_an_error_not_a_hang(cluster: str) -> None:
    async def start(settings: RaySettings) -> None:
        async with RayExecutor(functools.partial(ScriptedBackend, []), settings):
            pass

    with pytest.raises(ExecutorError, match=r"1 Ray worker\(s\) of 0.5 CPU \+ 1 GPU each do not fit the cluster"):
        asyncio.run(start(RaySettings(workers=1, cpus=0.5, gpus=1)))
    with pytest.raises(ExecutorError, match=r"5 Ray worker\(s\) of 0.5 CPU each do not fit .*2 CPU"):
        asyncio.run(start(RaySettings(workers=5, cpus=0.5)))
    assert ray.is_initialized()  # an executor that joined a session leaves it running


def test_items_are_handed_out_round_robin_up_to_each_workers_concurrency() -> None:
    from sfdsl.eval.ray_executor import _Slot

    executor = RayExecutor(None, RaySettings(concurrency=2))
    executor._slots = [_Slot("a"), _Slot("b", busy=1), _Slot("dead", alive=False)]
    assert [s.actor for s in executor._open_slots(10)] == ["a", "b", "a"]
    assert [s.actor for s in executor._open_slots(2)] == ["a", "b"]
    assert executor._open_slots(0) == []
