"""Tree search over text states: ToT-style beam search and UCB Monte-Carlo tree search.

States are partial solutions; ``expand`` proposes next steps for a state and
``value`` scores a state. Both are recipe-defined bodies run by the executor.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sfdsl import ast
from sfdsl.expressions import regex_flags
from sfdsl.values import SearchOutcome

Expand = Callable[[str, int], Coroutine[Any, Any, list[str]]]
Value = Callable[[str, int], Coroutine[Any, Any, float]]


def _child(state: str, step: str, join: str) -> str:
    step = step.strip()
    return f"{state}{join}{step}" if state else step


def _is_done(state: str, done: Any) -> bool:
    if done is None:
        return False
    if isinstance(done, ast.RegexLit):
        return re.search(done.pattern, state, regex_flags(done.flags)) is not None
    return re.search(str(done), state) is not None


async def beam_search(root: str, expand: Expand, value: Value, opts: dict[str, Any]) -> SearchOutcome:
    """Breadth-first search keeping the ``beam`` best states per level, to ``depth`` levels.

    Ties keep the earlier-proposed state. Finished states (matching ``done``) are kept, not expanded.
    """
    depth, beam = int(opts["depth"]), int(opts["beam"])
    join, done = str(opts["join"]), opts.get("done")
    frontier: list[tuple[float, str]] = [(0.0, root)]
    nodes = 1
    for level in range(depth):
        open_states = [(v, s) for v, s in frontier if not _is_done(s, done)]
        if not open_states:
            break
        async with asyncio.TaskGroup() as group:
            expansions = [group.create_task(expand(s, level)) for _, s in open_states]
        children = [_child(s, step, join) for (_, s), task in zip(open_states, expansions) for step in task.result()]
        async with asyncio.TaskGroup() as group:
            values = [group.create_task(value(c, level + 1)) for c in children]
        nodes += len(children)
        scored = [(task.result(), c) for task, c in zip(values, children)]
        finished = [(v, s) for v, s in frontier if _is_done(s, done)]
        ranked = sorted(enumerate(scored + finished), key=lambda x: (-x[1][0], x[0]))
        frontier = [item for _, item in ranked[:beam]]
    best_value, best = max(frontier, key=lambda x: x[0]) if frontier else (0.0, root)
    return SearchOutcome(best=best, value=best_value, path=tuple(best.split(join)) if best else (), nodes=nodes)


@dataclass
class _Node:
    state: str
    depth: int
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)
    visits: int = 0
    total: float = 0.0
    prior: float = 0.0
    expanded: bool = False

    def mean(self) -> float:
        return self.total / self.visits if self.visits else self.prior


async def mcts_search(root: str, expand: Expand, value: Value, opts: dict[str, Any]) -> SearchOutcome:
    """Monte-Carlo tree search: select by UCB (c·sqrt(ln N / n)), expand, evaluate, back up.

    Each simulation expands one leaf and values its children; the answer follows
    the most-visited children from the root.
    """
    sims, max_depth = int(opts["simulations"]), int(opts["depth"])
    c, join, done = float(opts["c"]), str(opts["join"]), opts.get("done")
    tree = _Node(root, 0)
    nodes, used = 1, 0
    for _ in range(sims):
        node = tree
        while node.expanded and node.children:
            node = max(node.children, key=lambda ch: _ucb(ch, node.visits, c))
        if node.depth < max_depth and not _is_done(node.state, done) and not node.expanded:
            steps = await expand(node.state, node.depth)
            node.expanded = True
            used += 1
            children = [_Node(_child(node.state, s, join), node.depth + 1, node) for s in steps]
            async with asyncio.TaskGroup() as group:
                values = [group.create_task(value(ch.state, ch.depth)) for ch in children]
            for ch, task in zip(children, values):
                ch.prior = task.result()
            node.children = children
            nodes += len(children)
            leaf_value = max((ch.prior for ch in children), default=0.0)
            for ch in children:
                ch.visits, ch.total = 1, ch.prior
        else:
            leaf_value = node.mean()
        while node is not None:
            node.visits += 1
            node.total += leaf_value
            node = node.parent  # type: ignore[assignment]
        if used and tree.expanded and all(_exhausted(ch, max_depth, done) for ch in _leaves(tree)):
            break
    best = tree
    path = [tree.state] if tree.state else []
    while best.children:
        best = max(best.children, key=lambda ch: (ch.visits, ch.mean()))
        path.append(best.state.split(join)[-1])
    return SearchOutcome(best=best.state, value=best.mean(), path=tuple(path), nodes=nodes, simulations=used)


def _ucb(node: _Node, parent_visits: int, c: float) -> float:
    if node.visits == 0:
        return math.inf
    return node.mean() + c * math.sqrt(math.log(max(parent_visits, 1)) / node.visits)


def _leaves(node: _Node) -> list[_Node]:
    if not node.children:
        return [node]
    return [leaf for ch in node.children for leaf in _leaves(ch)]


def _exhausted(node: _Node, max_depth: int, done: Any) -> bool:
    return node.depth >= max_depth or _is_done(node.state, done) or (node.expanded and not node.children)
