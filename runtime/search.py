"""Tree search over text states: ToT-style beam search and UCB Monte-Carlo tree search.

States are partial solutions; ``expand`` proposes next steps for a state and
``value`` scores a state. Both are recipe-defined bodies run by the executor.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sfdsl import ast, regexes
from sfdsl.values import SearchOutcome

#: Loop iterations between two yields to the event loop, in loops that may run without awaiting.
SLICE = 64

Expand = Callable[[str, int], Coroutine[Any, Any, list[str]]]
Value = Callable[[str, int], Coroutine[Any, Any, float]]


async def checkpoint(i: int) -> None:
    """Yield to the event loop every ``SLICE`` iterations, so a long loop never blocks it and can be cancelled."""
    if i % SLICE == SLICE - 1:
        await asyncio.sleep(0)


def _child(state: str, step: str, join: str) -> str:
    step = step.strip()
    return f"{state}{join}{step}" if state else step


def _is_done(state: str, done: Any) -> bool:
    if done is None:
        return False
    if isinstance(done, ast.RegexLit):
        return regexes.search(done.pattern, state, done.flags)
    return regexes.search(str(done), state)


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
    reward: float = 0.0  # the value computed when the node was added (AlphaLLM's cached reward)
    closed: bool = False  # an expansion yielded nothing: the node gets no more children

    def mean(self) -> float:
        return self.total / self.visits if self.visits else 0.0

    def backup(self, reward: float) -> None:
        node: _Node | None = self
        while node is not None:
            node.visits += 1
            node.total += reward
            node = node.parent


async def mcts_search(root: str, expand: Expand, value: Value, opts: dict[str, Any]) -> SearchOutcome:
    """Monte-Carlo tree search as AlphaLLM's ``search/mcts.py`` runs it (Tian et al. 2024).

    Each simulation walks down from the root. A node that is not terminal and has
    fewer than ``width`` children is expanded by one ``expand`` call (each step it
    yields becomes a child, up to ``width``); every new child is valued once and its
    value backed up: each node on the path gains one visit and the value in its
    total, so a node's visits are exactly the backups through it. A fully expanded
    node descends to the child with the highest UCT ``q/n + c*sqrt(ln N / n)``
    (the first on ties). A terminal node (``done`` matches, at ``depth``, or an
    expansion that yielded nothing) backs up its cached value again, with no model
    call. The result follows the children with the highest mean ``q/n`` from the
    root (AlphaLLM's ``best_action_greedy``). ``simulations`` counts the expansions.
    """
    sims, max_depth = int(opts["simulations"]), int(opts["depth"])
    c, width = float(opts.get("c", 1.0)), max(1, int(opts.get("width", 2)))
    join, done = str(opts.get("join", "\n")), opts.get("done")
    tree = _Node(root, 0)
    nodes, expansions = 1, 0

    def terminal(node: _Node) -> bool:
        return node.depth >= max_depth or _is_done(node.state, done) or (node.closed and not node.children)

    for sim in range(sims):
        await checkpoint(sim)
        node = tree
        while not terminal(node) and (node.closed or len(node.children) >= width):
            parent = node
            node = max(parent.children, key=lambda ch: _uct(ch, parent.visits, c))
        if terminal(node):
            node.backup(node.reward)
            continue
        steps = (await expand(node.state, node.depth))[: width - len(node.children)]
        expansions += 1
        added = [_Node(_child(node.state, s, join), node.depth + 1, node) for s in steps]
        if not added:
            node.closed = True
            node.backup(node.reward)
            continue
        async with asyncio.TaskGroup() as group:
            values = [group.create_task(value(ch.state, ch.depth)) for ch in added]
        for ch, task in zip(added, values, strict=True):
            ch.reward = task.result()
            node.children.append(ch)
            ch.backup(ch.reward)
        nodes += len(added)
    best = tree
    path = [tree.state] if tree.state else []
    while best.children:
        best = max(best.children, key=lambda ch: ch.mean())
        path.append(best.state.split(join)[-1])
    best_value = best.mean() if best is not tree else 0.0
    return SearchOutcome(best=best.state, value=best_value, path=tuple(path), nodes=nodes, simulations=expansions)


def _uct(node: _Node, parent_visits: int, c: float) -> float:
    return node.mean() + c * math.sqrt(math.log(max(parent_visits, 1)) / max(node.visits, 1))
