"""The concurrent eval loop: concurrency bound, failures, resume, samples."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

from sfdsl.errors import BackendError, BudgetExceeded
from sfdsl.eval.data import Item, item_key
from sfdsl.eval.metrics import match_exact
from sfdsl.eval.runner import EvalSpec, LogProgress, RichProgress, make_progress, make_run_key, run_eval
from sfdsl.eval.store import ResultStore
from sfdsl.runtime.results import Cost, RunResult


def _items(n: int) -> list[Item]:
    out = []
    for i in range(n):
        inputs = {"question": f"q{i}"}
        out.append(Item(index=i, item_id=str(i), inputs=inputs, gold=f"a{i}", key=item_key(str(i), inputs, f"a{i}")))
    return out


def _result(answer: Any, **kw: Any) -> RunResult:
    return RunResult(
        run_id="r", recipe="fake", answer=answer, cost=Cost(calls=1, prompt_tokens=5, completion_tokens=2), **kw
    )


class Fake:
    """A slow fake run_item that records how many items are in flight."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay, self.in_flight, self.max_in_flight = delay, 0, 0
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, inputs: dict[str, Any], seed: int) -> RunResult:
        self.calls.append((inputs["question"], seed))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        q = inputs["question"]
        if q == "q3":
            raise BackendError("server said 500")
        if q == "q4":
            raise BudgetExceeded("calls budget of 2 exceeded", partial=_result("partial"))
        return _result("a" + q[1:], score=0.8, outputs={"first": "wrong", "answer": "a" + q[1:]})


def _spec(**kw: Any) -> EvalSpec:
    return EvalSpec(
        **{"run_key": make_run_key(recipe="fake", fingerprint="f1"), "label": "fake", "matcher": match_exact, **kw}
    )


def test_concurrency_bound_respected_and_parallel(tmp_path: Path) -> None:
    fake = Fake(delay=0.02)
    with ResultStore.in_dir(tmp_path) as store:
        out = asyncio.run(run_eval(_items(12), fake, _spec(), store=store, concurrency=3))
    assert fake.max_in_flight == 3
    assert len(out.records) == 12 and out.new == 12


def test_failures_recorded_and_run_goes_on(tmp_path: Path) -> None:
    with ResultStore.in_dir(tmp_path) as store:
        out = asyncio.run(
            run_eval(_items(6), Fake(), _spec(), store=store, concurrency=4, progress=LogProgress(every=2))
        )
    by_id = {r.item_id: r for r in out.records}
    assert by_id["3"].error == "server said 500" and by_id["3"].error_kind == "BackendError"
    assert by_id["4"].error_kind == "BudgetExceeded" and by_id["4"].calls == 1  # partial cost kept
    assert not by_id["3"].correct and not by_id["4"].correct
    assert [by_id[k].correct for k in "0125"] == [True] * 4
    assert by_id["0"].first_correct is False and by_id["3"].first_correct is None
    assert by_id["0"].tokens == 7 and by_id["0"].score == 0.8


def test_item_timeout_recorded(tmp_path: Path) -> None:
    with ResultStore.in_dir(tmp_path) as store:
        out = asyncio.run(run_eval(_items(2), Fake(delay=1.0), _spec(item_timeout=0.05), store=store))
    assert {r.error_kind for r in out.records} == {"Timeout"}


def test_resume_skips_done_and_new_run_key_invalidates(tmp_path: Path) -> None:
    items = _items(10)
    with ResultStore.in_dir(tmp_path) as store:
        first = Fake()
        asyncio.run(run_eval(items[:4], first, _spec(), store=store))
        again = Fake()
        out = asyncio.run(run_eval(items, again, _spec(), store=store, concurrency=2))
        assert (out.new, out.resumed, len(out.records)) == (6, 4, 10)
        assert sorted(q for q, _ in again.calls) == sorted(f"q{i}" for i in range(4, 10))
        assert asyncio.run(run_eval(items, Fake(), _spec(), store=store)).new == 0
        changed = _spec(run_key=make_run_key(recipe="fake", fingerprint="f2"))
        assert asyncio.run(run_eval(items, Fake(), changed, store=store)).new == 10
        assert store.drop_errors(changed.run_key) == 2
        assert asyncio.run(run_eval(items, Fake(), changed, store=store)).new == 2


def test_samples_use_distinct_seeds(tmp_path: Path) -> None:
    fake = Fake()
    with ResultStore.in_dir(tmp_path) as store:
        out = asyncio.run(run_eval(_items(2), fake, _spec(samples=3, seed=10), store=store))
    assert sorted(fake.calls) == [(q, s) for q in ("q0", "q1") for s in (10, 11, 12)]
    assert [(r.item_id, r.sample, r.seed) for r in out.records][:3] == [("0", 0, 10), ("0", 1, 11), ("0", 2, 12)]


def test_store_never_duplicates(tmp_path: Path) -> None:
    with ResultStore.in_dir(tmp_path) as store:
        out = asyncio.run(run_eval(_items(1), Fake(), _spec(), store=store))
        assert store.add(out.records[0]) is False
        assert len(store.records(out.records[0].run_key)) == 1


def test_bad_concurrency(tmp_path: Path) -> None:
    with ResultStore.in_dir(tmp_path) as store, pytest.raises(ValueError):
        asyncio.run(run_eval(_items(1), Fake(), _spec(), store=store, concurrency=0))


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Logger:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.events.append((event, kw))

    warning = info


def test_progress_rich_on_tty_and_log_lines_otherwise(tmp_path: Path) -> None:
    assert isinstance(make_progress(io.StringIO()), LogProgress)
    tty = _TTY()
    bar = make_progress(tty)
    assert isinstance(bar, RichProgress)
    logger = _Logger()
    with ResultStore.in_dir(tmp_path) as store:
        asyncio.run(run_eval(_items(6), Fake(), _spec(), store=store, progress=bar, logger=logger))
        lines = LogProgress(every=2, logger=logger)
        asyncio.run(run_eval(_items(6), Fake(), _spec(run_key="other"), store=store, progress=lines, logger=logger))
    text = tty.getvalue()
    assert "6/6" in text and "it/s" in text and "acc 66.7%" in text and "tok 35" in text and "failed 2" in text
    progress = [kw for event, kw in logger.events if event == "eval.progress"]
    assert [p["done"] for p in progress] == [2, 4, 6]
    assert progress[-1]["accuracy"] == pytest.approx(4 / 6, abs=1e-4) and progress[-1]["tokens"] == 35
    assert {"items_per_s", "eta_s", "failed"} <= set(progress[-1])
    assert [event for event, _ in logger.events].count("eval.item_failed") == 4
