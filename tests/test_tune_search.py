"""`sfrun tune` on a synthetic task whose vote accuracy is known in closed form (tests/tune_support.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tune_support import RECIPES, WORDS, SyntheticBackend, analytic_curve, make_items, run_tune, write_items

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

DEV, TEST = 80, 40
PROMPT = 27  # words of self_consistency's prompt around a synthetic question (the scripted token count)
SC = f"{RECIPES / 'self_consistency.sf'}:self_consistency"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One search over n in 1..32 under a mean-token budget; its outputs and the backend's counts."""
    tmp = tmp_path_factory.mktemp("tune")
    rows = make_items(DEV + TEST, seed=3)
    data = write_items(tmp / "synthetic.jsonl", rows)
    backend = SyntheticBackend(rows)
    out = tmp / "out"
    # n samples cost PROMPT + n * WORDS tokens: the budget admits n <= 4, where the curve is still steep
    # (+0.09 from n=3 to 4), so 80 dev items tell the optimum apart (a 400-draw simulation always did).
    budget = PROMPT + 4 * WORDS + 10
    rc = run_tune([SC, "--data", str(data), "--space", "n=1..32", "-i", f"max_tokens={WORDS}", "--split",
                   f"{DEV}:{TEST}", "--metric", "numeric", "--trials", "32", "--constraint",
                   f"tokens_per_item<={budget}", "--baseline", "none", "--out", str(out), "-k", "16"], backend)
    assert rc == 0
    return {"out": out, "rows": rows, "backend": backend, "budget": budget,
            "doc": json.loads((out / "tune.json").read_text()), "front": json.loads((out / "front.json").read_text())}


def test_front_lies_within_its_cis_of_the_analytic_curve(tuned: dict) -> None:
    ps = [r["p"] for r in tuned["rows"][:DEV]]
    on_front = [p for p in tuned["front"] if p["on_front"]]
    assert len(on_front) >= 3
    for point in on_front:
        n = point["inputs"]["n"]
        lo, hi = point["accuracy_ci"]
        assert lo <= analytic_curve(ps, n) <= hi, (n, point["accuracy"], analytic_curve(ps, n))
        assert point["items"] == DEV and point["cost_per_item"]["tokens"] == PROMPT + n * WORDS


def test_chooses_the_analytic_optimum_under_the_token_budget(tuned: dict) -> None:
    ps = [r["p"] for r in tuned["rows"][:DEV]]
    feasible = [n for n in range(1, 33) if PROMPT + n * WORDS <= tuned["budget"]]
    best = max(feasible, key=lambda n: (analytic_curve(ps, n), -n))
    chosen = tuned["doc"]["chosen"]
    assert chosen["inputs"] == {"n": best, "max_tokens": WORDS}
    assert json.loads((tuned["out"] / "best.json").read_text()) == {"n": best, "max_tokens": WORDS}
    assert chosen["test"]["items"] == TEST


def test_uses_at_most_half_the_calls_of_the_full_grid(tuned: dict) -> None:
    full_grid = 32 * (DEV + TEST)  # self_consistency makes one model call per item, whatever n
    with sqlite3.connect(tuned["out"] / "results.sqlite") as db:
        stored_calls = db.execute("SELECT SUM(calls) FROM results").fetchone()[0]
    assert tuned["backend"].generate_calls == stored_calls  # every call is in the store, none repeated
    assert stored_calls <= full_grid / 2
    states = [t["state"] for t in tuned["doc"]["trials"]]
    assert states.count("stopped") == 28  # configurations over the budget left after the first rung


def test_bound_constraint_skips_configurations_unrun(tmp_path: Path) -> None:
    rows = make_items(24, seed=5)
    data = write_items(tmp_path / "d.jsonl", rows)
    backend = SyntheticBackend(rows)
    rc = run_tune([SC, "--data", str(data), "--space", "n=1..8", "-i", f"max_tokens={WORDS}", "--split", "16:8",
                   "--metric", "numeric", "--trials", "8", "--constraint", f"bound_tokens<={3 * WORDS}",
                   "--baseline", "none", "--out", str(tmp_path / "out")], backend)
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "tune.json").read_text())
    skipped = [t for t in doc["trials"] if t["state"] == "skipped"]
    assert sorted(t["inputs"]["n"] for t in skipped) == [4, 5, 6, 7, 8] and doc["skipped"] == 5
    assert all(t["items"] == 0 for t in skipped)
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        runs = {json.loads(m)["fixed_inputs"]["n"] for (m,) in db.execute("SELECT meta FROM runs")}
    assert runs == {1, 2, 3}  # the skipped ones never ran
    assert doc["chosen"]["inputs"]["n"] in {1, 2, 3} and doc["chosen"]["dev"]["bound"]["tokens"] <= 3 * WORDS
