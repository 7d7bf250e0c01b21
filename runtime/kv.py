"""KV-cache bookkeeping: the pool of sequence ids and the token batch fed to llama_decode."""

from __future__ import annotations

from collections import deque
from types import ModuleType
from typing import Any

__all__ = ["SeqPool", "TokenBatch"]


class SeqPool:
    """Sequence ids ``0..n-1`` of one context; releasing an id clears its KV cells."""

    def __init__(self, lib: ModuleType, mem: Any, n_seq: int) -> None:
        self._lib = lib
        self._mem = mem
        self._free: deque[int] = deque(range(n_seq))
        self.size = n_seq

    @property
    def n_free(self) -> int:
        return len(self._free)

    def acquire(self, n: int) -> list[int] | None:
        """``n`` free ids, or None (and nothing taken) when fewer are free."""
        if n > len(self._free):
            return None
        return [self._free.popleft() for _ in range(n)]

    def release(self, seq_id: int) -> None:
        """Drop the sequence's KV cells and return its id to the pool."""
        self._lib.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
        self._free.append(seq_id)

    def share(self, src: int, dsts: list[int]) -> None:
        """Give every ``dst`` the KV cells of ``src`` (metadata only with a unified cache)."""
        for dst in dsts:
            self._lib.llama_memory_seq_cp(self._mem, src, dst, -1, -1)


class TokenBatch:
    """A reusable ``llama_batch`` of up to ``capacity`` tokens, one sequence id each."""

    def __init__(self, lib: ModuleType, capacity: int) -> None:
        self._lib = lib
        self.capacity = capacity
        self.raw = lib.llama_batch_init(capacity, 0, 1)
        self._token = self.raw.token
        self._pos = self.raw.pos
        self._n_seq_id = self.raw.n_seq_id
        self._seq_id = self.raw.seq_id
        self._logits = self.raw.logits
        self.n = 0

    @property
    def room(self) -> int:
        return self.capacity - self.n

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq_id: int, *, logits: bool) -> int:
        """Append one token; returns its batch index (used to read its logits)."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._n_seq_id[i] = 1
        self._seq_id[i][0] = seq_id
        self._logits[i] = logits
        self.n = i + 1
        return i

    def decode(self, ctx: Any) -> int:
        """Run ``llama_decode`` on the tokens added since :meth:`clear`; its return code."""
        self.raw.n_tokens = self.n
        return int(self._lib.llama_decode(ctx, self.raw))

    def free(self) -> None:
        if self.raw is not None:
            self._lib.llama_batch_free(self.raw)
            self.raw = None
