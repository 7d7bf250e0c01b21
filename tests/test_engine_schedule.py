"""The batch-invariant admission rule, on fakes (no model): worst-case reservations, drains, clears."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sfdsl.runtime.engine import Engine


class FakeJob:
    def __init__(self, future: int, n_seqs: int = 1) -> None:
        self.future, self.n_seqs, self.prompt, self.seq_ids = future, n_seqs, [1, 2, 3], []

    def future_cells(self) -> int:
        return self.future

    def bind(self, seq_ids: list[int], model: Any) -> None:
        self.seq_ids = seq_ids


class FakePool:
    cache_slots = 0
    min_cached = 8

    def __init__(self) -> None:
        self.clears = 0

    def acquire(self, n: int, *, spare: int = -1) -> list[int]:
        return list(range(n))

    def clear(self) -> None:
        self.clears += 1


def engine(n_ctx: int, filled: int = 0) -> Any:
    e: Any = Engine.__new__(Engine)  # the admission rule only: no model, no thread
    e.invariant, e.drains, e._filled = True, 0, filled
    e.model, e._pool = SimpleNamespace(n_ctx=n_ctx), FakePool()
    e._waiting, e._active = [], []
    return e


def test_jobs_start_while_every_worst_case_fits_then_wait_in_order() -> None:
    e = engine(100)
    a, b, c, d = FakeJob(40), FakeJob(50), FakeJob(20), FakeJob(5)
    e._waiting = [a, b, c, d]
    e._admit()
    assert e._active == [a, b] and e._waiting == [c, d]  # c would overflow; d waits behind it (first come)
    e._filled, a.future, b.future = 90, 0, 0  # both ran to the end: their cells stay until a clear
    e._admit()
    assert e._active == [a, b] and e._pool.clears == 0  # no clear while jobs run: it would open holes
    e._active = []
    e._admit()
    assert e._pool.clears == 1 and e.drains == 1 and e._filled == 0 and e._active == [c, d]


def test_a_job_too_big_for_the_cache_runs_alone_on_a_clean_one() -> None:
    e = engine(100, filled=30)
    big, small = FakeJob(500), FakeJob(5)
    e._waiting = [big, small]
    e._admit()
    assert e._pool.clears == 1 and e._active == [big] and e._waiting == [small]


def test_batch_invariant_is_auto_true_or_false_and_keeps_a_sequence_id() -> None:
    from pathlib import Path

    import pytest

    from sfdsl.runtime.llama_lib import MAX_SEQS, ModelParams

    path = Path("model.gguf")
    assert ModelParams(path=path).batch_invariant == "auto"  # on for CPU-only models, off with GPU offload
    with pytest.raises(ValueError, match="batch_invariant"):
        ModelParams(path=path, batch_invariant="yes")  # type: ignore[arg-type]
    ModelParams(path=path, n_seq_max=16, prefix_cache=MAX_SEQS - 16, batch_invariant=False)
    with pytest.raises(ValueError, match="prefix_cache"):  # the grave takes one id
        ModelParams(path=path, n_seq_max=16, prefix_cache=MAX_SEQS - 16)
