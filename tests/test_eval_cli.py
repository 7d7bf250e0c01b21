"""``sfrun eval`` / ``sfrun data make`` command bodies, with a fake recipe target."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sfdsl.eval import cli
from sfdsl.eval.cli import Target, add_data_parser, add_eval_parser, split_recipe_spec
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.results import Cost, RunResult

FIXTURES = Path(__file__).parent / "fixtures"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfrun")
    sub = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_data_parser(sub)
    return parser


def fake_target(spec: str, backend: Any, limits: Any = None) -> Target:
    """'good.sf' answers right (two-turn, scored); 'cheap.sf' is wrong on odd items and abstains on 5s."""
    good = spec.startswith("good")

    async def run_item(inputs: dict[str, Any], seed: int) -> RunResult:
        await asyncio.sleep(0.001)
        n = int(inputs["question"].split()[2])  # "Ana has N ..."
        from sfdsl.eval.generate import arithmetic

        gold = {r["question"]: r["answer"] for r in arithmetic(20, seed=1)}[inputs["question"]]
        right = good or n % 2 == 0
        answer = str(gold if right else gold + 1)
        outputs = {"answer": answer, "first": str(gold + (n % 3 == 0))} if good else {"answer": answer}
        return RunResult(
            run_id="r",
            recipe=spec,
            answer=f"The answer is {answer}.",
            outputs=outputs,
            score=0.9 if right else 0.4,
            abstained=(not good and n % 5 == 0),
            cost=Cost(calls=3 if good else 1, prompt_tokens=30 if good else 10, completion_tokens=5),
        )

    return Target(
        label=spec.split(".")[0],
        fingerprint=spec,
        input_types={"question": "str"},
        required={"question"},
        run_item=run_item,
    )


@pytest.fixture
def data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    args = _parser().parse_args(["data", "make", "arithmetic", "--n", "20", "--seed", "1"])
    assert args.func(args) == 0
    path = tmp_path / "arith.jsonl"
    path.write_text(capsys.readouterr().out)
    return path


def test_data_make_outputs_jsonl(data: Path) -> None:
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(rows) == 20 and rows[0]["id"] == "arith-00000"
    bad = _parser().parse_args(["data", "make", "yesno", "--difficulty", "7"])
    assert bad.func(bad) == 2


def test_eval_two_recipes_end_to_end(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_target", fake_target)
    out = tmp_path / "out"
    argv = [
        "eval",
        "cheap.sf",
        "good.sf",
        "--data",
        str(data),
        "--metric",
        "numeric",
        "--out",
        str(out),
        "-k",
        "4",
        "--report",
    ]
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "Comparison" in text and "Two-turn" in text and "Selective answering" in text
    metrics = json.loads((out / "metrics.json").read_text())
    good, cheap = metrics["recipes"]["good"], metrics["recipes"]["cheap"]
    assert good["summary"]["accuracy"] == 1.0 and good["new"] == 20
    assert 0 < cheap["summary"]["accuracy"] < 1
    assert metrics["comparison"][1]["cost_multiple"] == pytest.approx(35 / 15)
    paired = metrics["comparison"][1]  # good is right on every item, so it wins every item cheap gets wrong
    cheap_wrong = round((1 - cheap["summary"]["accuracy"]) * 20)
    assert (paired["wins"], paired["losses"]) == (cheap_wrong, 0)
    assert paired["p_value"] == pytest.approx(min(1.0, 2 / 2**cheap_wrong))
    assert paired["gain_ci"][0] <= paired["gain"] <= paired["gain_ci"][1]
    assert "gain 95% CI" in text and f"{cheap_wrong}/0 (p=" in text
    assert "two_turn" in good["summary"] and "selective" in cheap["summary"]
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 3
    # rerun: everything resumes, nothing new
    args = _parser().parse_args(argv)
    assert args.func(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipes"]["good"]["new"] == 0 and metrics["recipes"]["good"]["resumed"] == 20


def test_bad_data_is_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_target", fake_target)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Ana has 3 apples", "answer": 3}\n{"question": 1\n')
    args = _parser().parse_args(["eval", "good.sf", "--data", str(bad), "--out", str(tmp_path / "o")])
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "bad.jsonl:2: invalid JSON" in err and "Traceback" not in err
    args = _parser().parse_args(["eval", "good.sf", "--data", str(bad), "--field", "question=nope"])
    bad.write_text('{"question": "Ana has 3 apples", "answer": 3}\n')
    assert args.func(args) == 1
    assert "no column 'nope'" in capsys.readouterr().err


def test_split_recipe_spec() -> None:
    assert split_recipe_spec("recipes/sc.sf:vote") == ("recipes/sc.sf", "vote")
    assert split_recipe_spec("recipes/sc.sf") == ("recipes/sc.sf", None)
    assert split_recipe_spec("C:/x/sc.sf") == ("C:/x/sc.sf", None)


class LazyPool:
    """Like BackendPool: model ids are known only once a run has loaded the model."""

    def __init__(self, model: str) -> None:
        self.model, self.loaded, self.calls, self.closed = model, False, 0, False

    def model_ids(self) -> str:
        return self.model if self.loaded else ""

    async def aclose(self) -> None:
        self.closed = True


def test_model_change_invalidates_and_warmup_runs_each_item_once(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[LazyPool] = []

    def target(spec: str, shared: Any, limits: Any = None) -> Target:
        lazy = pools[-1]

        async def run_item(inputs: dict[str, Any], seed: int) -> RunResult:
            lazy.loaded = True
            lazy.calls += 1
            return RunResult(run_id="r", recipe="m", answer="0", cost=Cost(calls=1))

        return Target(
            label="m",
            fingerprint="fp",
            input_types={"question": "str"},
            required=set(),
            run_item=run_item,
            model_ids=lazy.model_ids,
        )

    monkeypatch.setattr(cli, "load_target", target)

    def run(model: str) -> dict[str, Any]:
        parser = argparse.ArgumentParser()
        add_eval_parser(parser.add_subparsers(), make_backend=lambda args: pools.append(LazyPool(model)) or pools[-1])
        args = parser.parse_args(["eval", "m.sf", "--data", str(data), "--out", str(tmp_path / "o"), "--limit", "5"])
        assert args.func(args) == 0
        return json.loads((tmp_path / "o" / "metrics.json").read_text())["recipes"]["m"]

    first = run("m1")
    assert (first["models"], first["new"], pools[-1].calls, pools[-1].closed) == ("m1", 5, 5, True)
    again = run("m1")
    assert (again["new"], again["resumed"], pools[-1].calls) == (0, 5, 1)  # only the warm-up ran
    other = run("m2")
    assert (other["new"], other["resumed"]) == (5, 0) and other["run_key"] != first["run_key"]


TWO_TURN_SF = """
recipe twoturn(question: str) -> (answer, first) {
  prompt p = "Q: {{ question }}"
  draft = generate p (max_tokens: 16)
  prompt c = "Check {{ question }} Draft: {{ draft }}"
  final = generate c (max_tokens: 16)
  return answer: final, first: draft
}
"""


def test_real_recipe_with_scripted_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real glue (sfdsl.load + recipe.arun through a shared pool) on a two-turn recipe."""

    def reply(prompt: str, index: int) -> str:
        a, b = (int(x) for x in re.findall(r"(\d+) plus (\d+)", prompt)[0])
        return str(a + b + (1 if prompt.startswith("Q:") and a == 4 else 0))  # first turn wrong on "4 plus"

    (tmp_path / "twoturn.sf").write_text(TWO_TURN_SF)
    rows = [("a", 2, 3), ("b", 4, 4), ("c", 10, 1), ("d", 4, 0)]
    data = tmp_path / "d.csv"
    data.write_text("id,q,gold\n" + "".join(f"{i},{a} plus {b},{a + b}\n" for i, a, b in rows))
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(), make_backend=lambda args: ScriptedBackend(reply))
    argv = ["eval", str(tmp_path / "twoturn.sf"), "--data", str(data), "--field", "question=q", "--gold", "gold"]
    args = parser.parse_args([*argv, "--metric", "numeric", "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())["recipes"]["twoturn"]
    assert m["models"] == "scripted" and m["new"] == 4
    s = m["summary"]
    assert s["accuracy"] == 1.0 and s["cost"]["calls_per_item"] == 2
    assert s["two_turn"]["acc1"] == 0.5 and s["two_turn"]["table"]["wrong->right"] == 2
    args = parser.parse_args([*argv, "--metric", "numeric", "--out", str(tmp_path / "o")])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["recipes"]["twoturn"]["resumed"] == 4
    capsys.readouterr()


def test_budget_failures_recorded_with_real_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    (tmp_path / "twoturn.sf").write_text(TWO_TURN_SF)
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "1 plus 1", "answer": 2}\n{"question": "2 plus 2", "answer": 4}\n')
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(), make_backend=lambda args: ScriptedBackend(lambda p, i: "2"))
    args = parser.parse_args(
        [
            "eval",
            str(tmp_path / "twoturn.sf"),
            "--data",
            str(data),
            "--max-calls",
            "1",
            "--out",
            str(tmp_path / "o"),
            "--metric",
            "numeric",
        ]
    )
    assert args.func(args) == 0
    s = json.loads((tmp_path / "o" / "metrics.json").read_text())["recipes"]["twoturn"]["summary"]
    assert s["failures"] == {"count": 2, "by_kind": {"BudgetExceeded": 2}} and s["accuracy"] == 0.0
    assert "BudgetExceeded: 2" in capsys.readouterr().out


def _budget_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    recipe = tmp_path / "chain.sf"
    recipe.write_text((FIXTURES / "chain.sf").read_text(encoding="utf-8"), encoding="utf-8")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "w"}) + "\n" for i in range(3)),
                    encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([" ".join(["w"] * 40)] * 6), encoding="utf-8")
    return recipe, data, script


def test_eval_stores_budget_stopped_items_with_their_true_cost(tmp_path: Path) -> None:
    import sqlite3

    from sfdsl.cli import main

    recipe, data, script = _budget_files(tmp_path)
    out = tmp_path / "out"
    code = main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                 "--max-tokens", "45", "--out", str(out), "-k", "1"])
    assert code == 0
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT calls, completion_tokens, error_kind, error FROM results").fetchall()
    assert len(rows) == 3
    for calls, tokens, kind, error in rows:
        assert (calls, tokens, kind) == (2, 45, "BudgetExceeded") and error.startswith("stopped: token budget")
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["recipes"]["chain"]["summary"]
    assert summary["cost"]["calls_per_item"] == 2 and summary["failures"]["by_kind"] == {"BudgetExceeded": 3}


@pytest.mark.parametrize("blocked", ["metrics.json", "report.html"])
def test_eval_refuses_unwritable_outputs_before_running(blocked: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from sfdsl.cli import main

    recipe, data, script = _budget_files(tmp_path)
    out = tmp_path / "out"
    (out / blocked).mkdir(parents=True)
    code = main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                 "--out", str(out), "--report"])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot write {out / blocked}: it is a directory" in err
    assert len(err.strip().splitlines()) == 1 and not (out / "results.sqlite").exists()


def test_eval_output_that_fails_late_is_a_one_line_error(tmp_path: Path) -> None:
    from sfdsl.eval.store import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot write .*metrics.json: .*rerun the same command") as info:
        cli.write_output(blocker / "metrics.json", lambda: "{}")
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError, match="cannot create output directory"):
        cli.check_writable([blocker / "sub" / "report.html"])


def test_eval_out_dir_under_a_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sfdsl.cli import main

    recipe, data, script = _budget_files(tmp_path)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    code = main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                 "--out", str(blocker / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "cannot create output directory" in err and len(err.strip().splitlines()) == 1


def test_two_evals_on_the_same_out_second_refuses_at_once_with_the_holder_pid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    from sfdsl.cli import main

    recipe, data, script = _budget_files(tmp_path)
    out = tmp_path / "out"
    hold = ("import sys, time\nfrom sfdsl.eval.store import ResultStore\nResultStore(sys.argv[1])\n"
            "print('held', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(out / "results.sqlite")], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        code = main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1 and f"(pid {proc.pid})" in err and len(err.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()
    code = main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                 "--out", str(out), "-k", "1"])
    assert code == 0  # the killed holder's lock is taken over
    metrics = json.loads((out / "metrics.json").read_text())["recipes"]["chain"]
    assert (metrics["new"], metrics["resumed"]) == (3, 0)
    assert main(["eval", str(recipe), "--data", str(data), "--backend", f"scripted:{script}", "--no-cache",
                 "--out", str(out), "-k", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["recipes"]["chain"]
    assert (metrics["new"], metrics["resumed"]) == (0, 3)
    capsys.readouterr()
