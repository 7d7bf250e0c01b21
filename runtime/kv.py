"""KV-cache bookkeeping: the pool of sequence ids (with the prefix cache) and the token batch for llama_decode."""

from __future__ import annotations

from collections import OrderedDict, deque
from types import ModuleType
from typing import Any

from sfdsl.runtime.prefix_cache import RadixIndex

__all__ = ["SeqPool", "TokenBatch"]


class SeqPool:
    """Sequence ids ``0..n-1`` of one context, and the prefix cache kept in the spare ones.

    Releasing an id either clears its KV cells or, when ``keep`` names the tokens
    its cells hold, parks it in the cache (at most ``cache_slots`` ids, least
    recently used evicted first). Acquiring takes free ids, then evicts cached ones.

    A cached sequence is reused only while no cells have been freed since it was
    cached (``epoch``): llama.cpp puts new tokens in the lowest free cell, so after a
    free the rest of a prompt could land *below* the copied prefix, and the attention
    kernel, which visits cells in index order, would sum them in another order than a
    fresh prefill (a different last bit, and a different seeded sample).

    With a ``grave`` id (a batch-invariant engine) no cell is ever freed until :meth:`clear`:
    a dropped sequence's cells are handed to the grave (``llama_memory_seq_cp``, metadata
    only) before its id is cleared, so they stay occupied, no hole opens below a running
    sequence, and every new token lands above all earlier ones.
    """

    def __init__(
        self, lib: ModuleType, mem: Any, n_seq: int, *, cache_slots: int = 0, min_cached: int = 8,
        grave: int | None = None,
    ) -> None:
        self._lib = lib
        self._mem = mem
        self._free: deque[int] = deque(range(n_seq))
        self._cached: OrderedDict[int, list[int]] = OrderedDict()  # slot -> tokens, least recent first
        self._epochs: dict[int, int] = {}  # slot -> epoch when cached
        self.epoch = 0  # bumped whenever cells are freed
        self._clean_epoch = 0
        self._index = RadixIndex()
        self.cache_slots = cache_slots
        self.min_cached = min_cached
        self.size = n_seq
        self.grave = grave

    @property
    def n_free(self) -> int:
        """Ids that :meth:`acquire` can hand out (free or evictable)."""
        return len(self._free) + len(self._cached)

    @property
    def cached_cells(self) -> int:
        """KV cells the cache may hold (an upper bound: cached sequences may share cells)."""
        return sum(len(t) for t in self._cached.values())

    def acquire(self, n: int, *, spare: int = -1) -> list[int] | None:
        """``n`` ids (evicting cached ones but never ``spare``), or None and nothing taken."""
        if n > len(self._free) + len(self._cached) - (spare in self._cached):
            return None
        while len(self._free) < n:
            self.evict(spare=spare)
        return [self._free.popleft() for _ in range(n)]

    def release(self, seq_id: int, *, keep: list[int] | None = None) -> None:
        """Return the id: cache its cells when ``keep`` lists their tokens, else drop them."""
        if keep is not None and self.cache_slots and len(keep) >= self.min_cached:
            while len(self._cached) >= self.cache_slots:
                self.evict()
            self._cached[seq_id] = keep
            self._epochs[seq_id] = self.epoch
            self._index.insert(seq_id, keep)
            return
        self._drop(seq_id)
        self._free.append(seq_id)

    def evict(self, *, spare: int = -1) -> bool:
        """Drop the least recently used cached sequence (not ``spare``); False when none is left."""
        slot = next((s for s in self._cached if s != spare), None)
        if slot is None:
            return False
        self._index.remove(slot, self._cached.pop(slot))
        del self._epochs[slot]
        self._drop(slot)
        self._free.append(slot)
        return True

    def _drop(self, seq_id: int) -> None:
        """Clear ``seq_id``: its cells are freed, or kept occupied by the grave until :meth:`clear`."""
        if self.grave is not None:
            self._lib.llama_memory_seq_cp(self._mem, seq_id, self.grave, -1, -1)
            # No cell empties: the grave holds them. A cell already in the grave (a shared prompt) is
            # added again as a no-op: llama.cpp keeps a set of (position, cell) per sequence.
            self._lib.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
            return
        self._lib.llama_memory_seq_rm(self._mem, seq_id, -1, -1)
        self.epoch += 1

    @property
    def fragmented(self) -> bool:
        """Whether cells were freed since the cache was last cleared (new tokens may land below old ones)."""
        return self.epoch != self._clean_epoch

    def clear(self) -> None:
        """Empty the whole KV cache and the prefix cache (only when no sequence is in use)."""
        self._lib.llama_memory_clear(self._mem, True)
        self._free = deque(range(self.size))
        self._cached.clear()
        self._epochs.clear()
        self._index = RadixIndex()
        self._clean_epoch = self.epoch

    def lookup(self, tokens: list[int]) -> tuple[int, int] | None:
        """``(slot, n)``: a cached sequence whose first ``n`` tokens equal the prompt's; marks it recently used."""
        found = self._index.longest(tokens, lambda slot: self._epochs[slot] == self.epoch)
        if found is not None:
            self._cached.move_to_end(found[0])
        return found

    def copy_prefix(self, src: int, dst: int, n: int) -> None:
        """Give ``dst`` the cells of positions ``0..n-1`` of ``src``."""
        self._lib.llama_memory_seq_cp(self._mem, src, dst, 0, n)

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
