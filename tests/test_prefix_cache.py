"""The radix index of the prefix cache: longest prefixes, splits, removal."""

from __future__ import annotations

import random

from sfdsl.runtime.prefix_cache import RadixIndex


def brute(slots: dict[int, list[int]], tokens: list[int]) -> int:
    def common(a: list[int]) -> int:
        n = 0
        while n < min(len(a), len(tokens)) and a[n] == tokens[n]:
            n += 1
        return n

    return max((common(t) for t in slots.values()), default=0)


def test_longest_prefix_picks_the_deepest_match() -> None:
    index = RadixIndex()
    index.insert(1, [5, 6, 7, 8])
    index.insert(2, [5, 6, 9])
    assert index.longest([5, 6, 7, 8, 10]) == (1, 4)
    assert index.longest([5, 6, 9, 9]) == (2, 3)
    assert index.longest([5, 6]) in {(1, 2), (2, 2)}
    assert index.longest([4]) is None
    index.remove(1, [5, 6, 7, 8])
    assert index.longest([5, 6, 7, 8]) == (2, 2)
    index.remove(2, [5, 6, 9])
    assert index.longest([5, 6]) is None


def test_prefix_inside_an_edge_and_reinsert() -> None:
    index = RadixIndex()
    index.insert(1, [1, 2, 3, 4, 5])
    index.insert(2, [1, 2])  # ends inside slot 1's edge: the edge splits
    assert index.longest([1, 2, 7]) == (2, 2)  # most recent slot among those that match
    assert index.longest([1, 2, 3]) == (1, 3)
    index.insert(1, [1, 2, 3, 4, 5])
    assert index.longest([1, 2]) == (1, 2)


def test_matches_brute_force_on_random_lists() -> None:
    rng = random.Random(0)
    index = RadixIndex()
    slots: dict[int, list[int]] = {}
    for step in range(400):
        slot = rng.randrange(12)
        if slot in slots and rng.random() < 0.4:
            index.remove(slot, slots.pop(slot))
        elif slot not in slots:
            base = rng.choice(list(slots.values())) if slots and rng.random() < 0.7 else []
            tokens = base[: rng.randrange(len(base) + 1)] + [rng.randrange(4) for _ in range(rng.randrange(1, 6))]
            slots[slot] = tokens
            index.insert(slot, tokens)
        probe = [rng.randrange(4) for _ in range(rng.randrange(1, 8))]
        if slots and rng.random() < 0.5:
            probe = rng.choice(list(slots.values()))[: rng.randrange(1, 9)] + probe
        found = index.longest(probe)
        want = brute(slots, probe)
        assert (found[1] if found else 0) == want, (step, probe, slots)
        if found:
            assert slots[found[0]][: found[1]] == probe[: found[1]]


def test_pool_reuses_a_cached_prefix_only_until_cells_are_freed() -> None:
    from types import SimpleNamespace

    from sfdsl.runtime.kv import SeqPool

    removed: list[int] = []
    lib = SimpleNamespace(llama_memory_seq_rm=lambda mem, sid, p0, p1: removed.append(sid),
                          llama_memory_seq_cp=lambda *a: None)
    pool = SeqPool(lib, None, 4, cache_slots=2, min_cached=2)
    a, b = pool.acquire(2) or []
    pool.release(a, keep=[1, 2, 3, 4])
    assert pool.lookup([1, 2, 3, 9]) == (a, 3)
    pool.release(b)  # cells freed: a later prompt could land below the cached ones
    assert removed == [b] and pool.lookup([1, 2, 3, 9]) is None
    c = pool.acquire(1)
    assert c is not None
    pool.release(c[0], keep=[1, 2, 7])
    assert pool.lookup([1, 2, 3, 9]) == (c[0], 2)  # the fresh slot, though the stale one matches more
    assert len(pool.acquire(4) or []) == 4  # cached slots are evicted for requests
