"""recipes/adaptive_router.sf: its three routes, and, tuned, it beats the best fixed-n vote at equal mean tokens."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tune_support import RECIPES, SyntheticBackend, make_items, run_tune, write_items

import sfdsl
from sfdsl.eval.paired import paired_gain
from sfdsl.eval.store import ItemRecord, ResultStore

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

ROUTER = RECIPES / "adaptive_router.sf"
WORDS = 60  # a chain of thought much longer than the prompt, as with a real model
DEV, TEST = 60, 300


@pytest.mark.parametrize(("p", "inputs", "route", "calls"), [
    (0.99, {}, "greedy", 2),                      # P(True) 0.99 >= t1: the greedy answer
    (0.30, {"t2": 0.0}, "vote", 3),               # below t1: a vote, whose share always passes t2 = 0
    (0.30, {"t2": 1.1, "max_steps": 1}, "correct", None),  # no share reaches 1.1: step correction
])
def test_routes(p: float, inputs: dict, route: str, calls: int | None) -> None:
    row = {"id": "x", "question": f"synthetic question number 0000 p={p}", "answer": 100, "p": p}
    result = sfdsl.load(ROUTER).recipe().run({"question": row["question"], **inputs},
                                             backend=SyntheticBackend([row], words=WORDS))
    assert result.outputs["route"] == route
    assert result.bound is not None and result.cost.calls <= result.bound["calls"]
    if calls is not None:
        assert result.cost.calls == calls
    else:
        assert result.cost.calls > 3


def _records(out: Path, inputs: dict, ids: set[str]) -> list[ItemRecord]:
    """The stored records of the run with these fixed inputs, on these items."""
    with sqlite3.connect(out / "results.sqlite") as db:
        keys = [k for k, meta in db.execute("SELECT run_key, meta FROM runs")
                if json.loads(meta)["fixed_inputs"] == inputs]
    with ResultStore.in_dir(out) as store:
        for key in keys:
            records = [r for r in store.records(key) if r.item_id in ids]
            if {r.item_id for r in records} == ids:
                return records
    raise AssertionError(f"no stored run of {inputs} covers the items")


def test_tuned_router_beats_the_best_fixed_vote_at_equal_tokens(tmp_path: Path) -> None:
    rows = make_items(DEV + TEST, seed=7, mixture=True)  # half easy (p >= 0.95), half hard (p in 0.2..0.5)
    data = write_items(tmp_path / "mixture.jsonl", rows)
    split = f"{DEV}:{TEST}"
    router_out, vote_out = tmp_path / "router", tmp_path / "vote"
    assert run_tune([str(ROUTER), "--data", str(data), "--space", "t1=[0.8,0.95]", "--space", "k=[4,8]",
                     "--space", "t2=[0,0.5]", "-i", "max_steps=1", "--split", split, "--metric", "numeric",
                     "--trials", "8", "--constraint", "tokens_per_item<=360", "--baseline", "none",
                     "--out", str(router_out), "-k", "16"], SyntheticBackend(rows, words=WORDS)) == 0
    router = json.loads((router_out / "tune.json").read_text())["chosen"]
    budget = router["dev"]["cost_per_item"]["tokens"]
    # The best fixed-n vote that spends no more tokens per item than the tuned router.
    assert run_tune([f"{RECIPES / 'self_consistency.sf'}:self_consistency", "--data", str(data), "--space",
                     "n=1..8", "--split", split, "--metric", "numeric", "--trials", "8", "--constraint",
                     f"tokens_per_item<={budget}", "--baseline", "none", "--out", str(vote_out), "-k", "16"],
                    SyntheticBackend(rows, words=WORDS)) == 0
    vote = json.loads((vote_out / "tune.json").read_text())["chosen"]
    assert vote["test"]["summary"]["cost"]["tokens_per_item"] <= router["test"]["summary"]["cost"]["tokens_per_item"]

    test_ids = {r["id"] for r in rows[DEV:]}
    gain = paired_gain(_records(vote_out, vote["inputs"], test_ids), _records(router_out, router["inputs"], test_ids))
    assert gain is not None
    shown = (f"held-out test, {TEST} items: {router['config']} {router['test']['summary']['accuracy']:.3f} at "
             f"{router['test']['summary']['cost']['tokens_per_item']:.0f} tokens/item vs {vote['config']} "
             f"{vote['test']['summary']['accuracy']:.3f} at {vote['test']['summary']['cost']['tokens_per_item']:.0f}; "
             f"gain {gain['gain']:+.3f}, 95% CI [{gain['gain_ci'][0]:+.3f}, {gain['gain_ci'][1]:+.3f}], "
             f"{gain['wins']} won, {gain['losses']} lost")
    print(shown)
    assert gain["gain_ci"][0] > 0, shown
