"""`sfrun tune` from the command line: errors before anything runs, the outputs, the reproduce command,
and `--inputs-json` on `sfrun eval` and `sfrun serve`."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from tune_support import RECIPES, WORDS, SyntheticBackend, make_items, run_tune, write_items

from sfdsl.eval.cli import add_eval_parser

pytest.importorskip("optuna", reason="sfrun tune needs the tune extra: pip install 'sfdsl[tune]'")

SC = f"{RECIPES / 'self_consistency.sf'}:self_consistency"
COT = str(RECIPES / "chain_of_thought.sf")


@pytest.fixture
def task(tmp_path: Path) -> dict[str, Any]:
    rows = make_items(24, seed=2)
    return {"rows": rows, "data": write_items(tmp_path / "d.jsonl", rows), "out": tmp_path / "out"}


def _tune(task: dict[str, Any], *extra: str, backend: Any = None) -> tuple[int, SyntheticBackend]:
    backend = backend or SyntheticBackend(task["rows"])
    argv = ["--data", str(task["data"]), "--metric", "numeric", "--out", str(task["out"]), *extra]
    return run_tune(argv, backend), backend


@pytest.mark.parametrize(("extra", "message"), [
    ([SC, "--space", "nn=1..4"], "no recipe has an input 'nn'"),
    ([SC, "--space", "n=1.5..3"], "int input"),
    ([SC, "--space", "n=0..4"], "self_consistency refuses n=0"),
    ([SC, "--space", "n=1..4", "--constraint", "tokens<=5"], "--constraint expects"),
    ([SC, "--space", "n=1..4", "--split", "20:20"], "asks for 40 rows but the data has 24"),
    ([SC, "--space", "n=1..4", "--objective", "accuracy,money"], "--objective expects"),
    ([SC, "--space", "n=1..4", "-i", "colour=red"], "no recipe has an input 'colour'"),
    ([SC, "--space", "n=1..4", "--baseline", "no_such_recipe"], "no no_such_recipe.sf next to the recipes or in"),
    ([str(RECIPES / "missing.sf"), "--space", "n=1..4"], "missing.sf"),
])
def test_bad_input_is_an_error_before_any_model_call(task: dict[str, Any], extra: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, backend = _tune(task, *extra)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert backend.generate_calls == 0 and backend.score_calls == 0
    assert not (task["out"] / "results.sqlite").exists() and not (task["out"] / "study.sqlite").exists()


def test_outputs_and_the_reproduce_command(task: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    rc, _ = _tune(task, SC, COT, "--space", "n=[1,3,5]", "-i", f"max_tokens={WORDS}", "--split", "16:8",
                  "--trials", "4", "--first-rung", "8")
    stdout = capsys.readouterr().out
    assert rc == 0
    out = task["out"]
    doc = json.loads((out / "tune.json").read_text())
    front = json.loads((out / "front.json").read_text())
    best = json.loads((out / "best.json").read_text())
    configs = {(p["recipe"], p["searched"].get("n")) for p in front}
    assert configs <= {("self_consistency", 1), ("self_consistency", 3), ("self_consistency", 5),
                       ("chain_of_thought", None)}
    assert len(doc["trials"]) >= 4 and all(set(p) >= {"inputs", "accuracy", "accuracy_ci", "cost_per_item"}
                                           for p in front)
    chosen = doc["chosen"]
    assert best == chosen["inputs"] and best["max_tokens"] == WORDS
    test = chosen["test"]
    assert test["baseline"]["recipe"] == "chain_of_thought" and test["paired"]["items"] == 8
    assert {"gain", "gain_ci", "wins", "losses", "p_value"} <= set(test["paired"])
    assert "reproduce: sfrun eval" in stdout and "won" in stdout

    # The printed command, run as `sfrun eval`, gives the test-split figure.
    argv = shlex.split(chosen["reproduce"])
    assert argv[:2] == ["sfrun", "eval"]
    parser = argparse.ArgumentParser(prog="sfrun")
    sub = parser.add_subparsers()
    backend = SyntheticBackend(task["rows"])
    add_eval_parser(sub, make_backend=lambda args: backend).add_argument("--import-path", action="append",
                                                                          default=[])
    args = parser.parse_args(argv[1:])
    assert args.func(args) == 0
    metrics = json.loads((out / "reproduce" / "metrics.json").read_text())
    (summary,) = [r["summary"] for r in metrics["recipes"].values()]
    assert summary["accuracy"] == test["summary"]["accuracy"] and summary["items"] == 8
    assert summary["cost"]["tokens_per_item"] == test["summary"]["cost"]["tokens_per_item"]


def test_eval_takes_inputs_json(task: dict[str, Any], tmp_path: Path) -> None:
    inputs = tmp_path / "best.json"
    inputs.write_text(json.dumps({"n": 3, "max_tokens": 7}))
    backend = SyntheticBackend(task["rows"])
    parser = argparse.ArgumentParser(prog="sfrun")
    sub = parser.add_subparsers()
    add_eval_parser(sub, make_backend=lambda args: backend).add_argument("--import-path", action="append",
                                                                          default=[])
    args = parser.parse_args(["eval", SC, "--data", str(task["data"]), "--inputs-json", str(inputs), "-i",
                              "max_tokens=5", "--limit", "4", "--out", str(tmp_path / "e")])
    assert args.func(args) == 0
    assert backend.samples == 4 * 3  # n from the file
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["recipes"]["self_consistency"]["summary"]["cost"]["completion_tokens_per_item"] == 3 * 5  # -i wins

    inputs.write_text("[1, 2]")
    args = parser.parse_args(["eval", SC, "--data", str(task["data"]), "--inputs-json", str(inputs),
                              "--out", str(tmp_path / "e2")])
    assert args.func(args) == 1


def test_serve_takes_inputs_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sfdsl.serve
    from sfdsl.cli import main

    inputs = tmp_path / "best.json"
    inputs.write_text(json.dumps({"n": 3, "temperature": 0.5}))
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def create_app(registry: Any, *, config: Any, make_pool: Any) -> Any:
        seen.update(config.inputs)
        raise Stop

    monkeypatch.setattr(sfdsl.serve, "create_app", create_app)
    main(["serve", str(RECIPES / "self_consistency.sf"), "--inputs-json", str(inputs), "-i", "n=4"])
    assert seen == {"n": "4", "temperature": 0.5}  # -i wins over the file, as for `sfrun run`


def test_tpe_over_two_recipes_and_a_float_range(task: dict[str, Any]) -> None:
    """An infinite space: TPE proposes the recipe, and only the chosen recipe's inputs, within their ranges."""
    rc, _ = _tune(task, SC, COT, "--space", "n=1..3", "--space", "temperature=0.3..1.0", "--split", "16:8",
                  "--trials", "5")
    assert rc == 0
    trials = json.loads((task["out"] / "tune.json").read_text())["trials"]
    assert len([t for t in trials if t["state"] in ("complete", "stopped")]) == 5
    for t in trials:
        if t["recipe"] == "chain_of_thought":
            assert t["inputs"] == {}
        else:
            assert set(t["inputs"]) == {"n", "temperature"}
            assert 1 <= t["inputs"]["n"] <= 3 and 0.3 <= t["inputs"]["temperature"] <= 1.0
