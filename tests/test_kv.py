"""KV bookkeeping without a model: the batch-invariant pool never frees a cell until it is cleared."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sfdsl.runtime.kv import SeqPool


class FakeCells:
    """llama.cpp's unified cache as (cell -> set of sequence ids); records every cell that empties."""

    def __init__(self) -> None:
        self.cells: dict[int, set[int]] = {}
        self.freed: list[int] = []

    def lib(self) -> Any:
        def seq_rm(mem: Any, sid: int, p0: int, p1: int) -> None:
            for cell, seqs in list(self.cells.items()):
                seqs.discard(sid)
                if not seqs:
                    del self.cells[cell]
                    self.freed.append(cell)

        def seq_cp(mem: Any, src: int, dst: int, p0: int, p1: int) -> None:
            for seqs in self.cells.values():
                if src in seqs:
                    seqs.add(dst)

        def clear(mem: Any, data: bool) -> None:
            self.freed.extend(self.cells)
            self.cells.clear()

        return SimpleNamespace(llama_memory_seq_rm=seq_rm, llama_memory_seq_cp=seq_cp, llama_memory_clear=clear)

    def decode(self, sid: int, n: int) -> None:
        start = len(self.cells)
        for cell in range(start, start + n):
            self.cells[cell] = {sid}


def test_a_pool_with_a_grave_frees_no_cell_until_cleared() -> None:
    kv = FakeCells()
    pool = SeqPool(kv.lib(), None, 4, cache_slots=1, min_cached=2, grave=4)
    a, b, c = pool.acquire(3) or []
    kv.decode(a, 5)
    pool.share(a, [b, c])  # three samples of one prompt
    kv.decode(b, 2)
    kv.decode(c, 3)
    pool.release(b)  # a finished sample
    pool.release(c, keep=[1, 2, 3])  # parked in the prefix cache
    assert pool.lookup([1, 2, 3, 4]) == (c, 3)
    pool.release(a)
    assert pool.acquire(4) is not None  # the cached slot is evicted for a request: into the grave too
    assert kv.freed == [] and len(kv.cells) == 10
    assert all(4 in seqs for seqs in kv.cells.values())
    assert not pool.fragmented  # nothing was freed: a cached prefix stays usable
    pool.release(0)
    pool.clear()
    assert len(kv.freed) == 10


def test_a_pool_without_a_grave_frees_cells_at_once() -> None:
    kv = FakeCells()
    pool = SeqPool(kv.lib(), None, 2)
    a, b = pool.acquire(2) or []
    kv.decode(a, 3)
    kv.decode(b, 2)
    pool.release(a)
    assert kv.freed == [0, 1, 2] and pool.fragmented
