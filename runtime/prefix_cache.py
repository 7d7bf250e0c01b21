"""A radix tree over token ids: which cached sequence shares the longest prefix with a prompt.

After SGLang's RadixAttention: finished sequences keep their KV cells in spare
sequence slots; a new prompt copies the longest cached prefix (a metadata-only
``llama_memory_seq_cp`` on the unified cache) and decodes only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["RadixIndex"]


class _Node:
    __slots__ = ("children", "edge", "slots")

    def __init__(self, edge: tuple[int, ...]) -> None:
        self.edge = edge
        self.children: dict[int, _Node] = {}
        self.slots: dict[int, None] = {}  # slots whose tokens run through this whole edge, oldest first


def _common(a: Sequence[int], b: Sequence[int], start: int) -> int:
    """Length of the common prefix of ``a`` and ``b[start:]``."""
    n = min(len(a), len(b) - start)
    i = 0
    while i < n and a[i] == b[start + i]:
        i += 1
    return i


class RadixIndex:
    """Token lists of cache slots, compressed into a radix tree.

    Example:
        >>> index = RadixIndex()
        >>> index.insert(3, [1, 2, 3, 4])
        >>> index.longest([1, 2, 3, 9])
        (3, 3)
    """

    def __init__(self) -> None:
        self._root = _Node(())

    def insert(self, slot: int, tokens: Sequence[int]) -> None:
        """Record that ``slot`` holds the KV cells of ``tokens`` (positions 0..len-1)."""
        node, i = self._root, 0
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                leaf = _Node(tuple(tokens[i:]))
                leaf.slots[slot] = None
                node.children[tokens[i]] = leaf
                return
            common = _common(child.edge, tokens, i)
            if common < len(child.edge):
                child = self._split(node, child, common)
            child.slots.pop(slot, None)
            child.slots[slot] = None  # newest last
            node, i = child, i + common

    def remove(self, slot: int, tokens: Sequence[int]) -> None:
        """Forget ``slot`` (inserted with ``tokens``); prunes branches no slot uses any more."""
        node, i = self._root, 0
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                return
            child.slots.pop(slot, None)
            if not child.slots:
                del node.children[tokens[i]]
                return
            node, i = child, i + len(child.edge)

    def longest(self, tokens: Sequence[int], usable: Callable[[int], bool] = lambda _: True) -> tuple[int, int] | None:
        """``(slot, n)``: the most recently cached usable slot sharing the longest prefix (n tokens), or None."""
        node, i, best = self._root, 0, None
        while i < len(tokens):
            child = node.children.get(tokens[i])
            if child is None:
                break
            common = _common(child.edge, tokens, i)
            slot = next((s for s in reversed(child.slots) if usable(s)), None)
            if slot is not None:
                best = (slot, i + common)
            if common < len(child.edge):
                break
            node, i = child, i + common
        return best

    @staticmethod
    def _split(parent: _Node, child: _Node, at: int) -> _Node:
        mid = _Node(child.edge[:at])
        mid.slots = dict(child.slots)
        child.edge = child.edge[at:]
        mid.children[child.edge[0]] = child
        parent.children[mid.edge[0]] = mid
        return mid
