"""Tree search: MCTS as AlphaLLM runs it, checked step by step against traces computed by hand."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from sfdsl.runtime.search import mcts_search

# The tree used below: each state's children, in the order expand proposes them, and each state's value.
CHILDREN = {"": ["A", "B"], "A": ["A1", "A2"], "B": ["B1", "B2"]}
VALUES = {"A": 0.6, "B": 0.4, "A\nA1": 0.2, "A\nA2": 0.9, "B\nB1": 1.0, "B\nB2": 0.0}


class Tree:
    """expand gives a state's next unproposed child (one per call); value looks the state up."""

    def __init__(self) -> None:
        self.expanded: list[str] = []
        self.valued: list[str] = []
        self.proposed: dict[str, int] = defaultdict(int)

    async def expand(self, state: str, depth: int) -> list[str]:
        self.expanded.append(state)
        key = state.split("\n")[-1]
        options = CHILDREN.get(key, [])
        i = self.proposed[key]
        self.proposed[key] += 1
        return options[i : i + 1]

    async def value(self, state: str, depth: int) -> float:
        self.valued.append(state)
        return VALUES[state]


def search(sims: int, **opts: Any) -> tuple[Any, Tree]:
    tree = Tree()
    outcome = asyncio.run(mcts_search("", tree.expand, tree.value, {"simulations": sims, "depth": 2, **opts}))
    return outcome, tree


def test_mcts_hand_computed_trace_five_simulations() -> None:
    # sims 1-2 expand the root (A: 0.6, B: 0.4). Sim 3: UCT at the root (N=2) is A 0.6+sqrt(ln2) = 1.433
    # vs B 0.4+sqrt(ln2) = 1.233: A is expanded (A1: 0.2; A now n=2, q=0.8). Sim 4 (N=3): A 0.4+sqrt(ln3/2)
    # = 1.141 vs B 0.4+sqrt(ln3) = 1.448: B gets B1 (1.0; B n=2, q=1.4). Sim 5 (N=4): A 0.4+0.833 = 1.233
    # vs B 0.7+0.833 = 1.533: B gets B2 (0.0; B n=3, q=1.4). Greedy by q/n: B (0.467 > A's 0.4), then B1 (1.0).
    outcome, tree = search(5, width=2, c=1.0)
    assert tree.expanded == ["", "", "A", "B", "B"]
    assert tree.valued == ["A", "B", "A\nA1", "B\nB1", "B\nB2"]  # every new child valued exactly once
    assert outcome.best == "B\nB1" and outcome.value == pytest.approx(1.0)
    assert outcome.path == ("B", "B1") and outcome.nodes == 6 and outcome.simulations == 5


def test_mcts_revisits_a_terminal_leaf_with_its_cached_value() -> None:
    # Sim 6 (N=5): A 0.4+sqrt(ln5/2) = 1.297 vs B 0.467+sqrt(ln5/3) = 1.199: A gets A2 (0.9; A n=3, q=1.7).
    # Sim 7 (N=6): A 0.567+0.773 = 1.340 vs B 0.467+0.773 = 1.240: A, now full (N_A=3): A1 0.2+sqrt(ln3)
    # = 1.248 vs A2 0.9+1.048 = 1.948: A2 is at depth 2, terminal: its cached 0.9 is backed up again,
    # no model call. Greedy: A (2.6/4 = 0.65 > 0.467), then A2 (1.8/2 = 0.9).
    outcome, tree = search(7, width=2, c=1.0)
    assert tree.expanded == ["", "", "A", "B", "B", "A"]
    assert len(tree.valued) == 6
    assert outcome.best == "A\nA2" and outcome.value == pytest.approx(0.9)
    assert outcome.nodes == 7 and outcome.simulations == 6


def test_mcts_final_path_is_greedy_by_mean_not_by_visits() -> None:
    # c = 0: selection is greedy too. Sims 1-2: A (0.6), B (0.4). Sim 3: A (0.6 > 0.4) gets A1 (0.2): A's mean
    # falls to 0.4, tying B; ties go to the first child, so sim 4 gives A A2 (0.9): A = 1.7/3 = 0.567. Sim 5:
    # A is full; A2 (0.9) is terminal and backed up again: A = 2.6/4. A has 4 visits and B 1, and the answer
    # follows the best mean: A, then A2 (1.8/2) over A1 (0.2).
    outcome, tree = search(5, width=2, c=0.0)
    assert tree.expanded == ["", "", "A", "A"]
    assert outcome.best == "A\nA2" and outcome.value == pytest.approx(0.9)


def test_mcts_width_one_is_a_single_chain() -> None:
    outcome, tree = search(3, width=1)
    assert tree.expanded == ["", "A"]  # the third simulation reaches the depth-2 leaf: no model call
    assert outcome.best == "A\nA1" and outcome.nodes == 3


def test_mcts_stops_expanding_a_finished_state() -> None:
    outcome, tree = search(4, width=2, c=1.0, done="^B")
    # B is finished; sim 3 picks A (UCT 1.433 vs 1.233) and gets A1 (A = 0.8/2). Sim 4 (N=3): A 0.4+0.741
    # vs B 0.4+1.048: B, finished, backs up its 0.4 again. Greedy: A 0.4 vs B 0.8/2 = 0.4: the first, A.
    assert tree.expanded == ["", "", "A"]
    assert outcome.best == "A\nA1"


def test_mcts_closes_a_node_whose_expansion_yields_nothing() -> None:
    outcome, tree = search(4, width=3, c=1.0)
    # The root has two children to give: its third expansion yields nothing, closes it and backs up the root's
    # 0 (N=3). Sim 4: A 0.6+sqrt(ln3) = 1.648 vs B 1.448: A gets A1 (A = 0.8/2). Greedy: A 0.4 ties B: A, A1.
    assert tree.expanded == ["", "", "", "A"]
    assert outcome.best == "A\nA1" and outcome.simulations == 4 and outcome.nodes == 4
