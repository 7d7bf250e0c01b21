"""`sfrun check` passes ⇒ the run does not fail on the same thing: the fixtures of tests/fixtures/check_run/.

Each fixture once passed the check and failed (or silently misbehaved) at run time; its ``.expected`` file
lists what happens now, one line each: ``check: HEADLINE`` for every diagnostic the check reports (errors
and warnings), ``run: ErrorClass: LOCATED MESSAGE`` for the run's error, ``answer: TEXT`` for a run that
succeeds, ``event: NAME key=value ...`` for a trace event the run must log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.errors import CompileError, SfdslError

CASES_DIR = Path(__file__).parent / "fixtures" / "check_run"
CASES = sorted(p.stem for p in CASES_DIR.glob("*.sf"))


def _expected(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"check": [], "run": [], "answer": [], "event": []}
    for line in (CASES_DIR / f"{name}.expected").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(": ")
        found[key].append(value)
    return found


def _header(text: str, key: str) -> object:
    return json.loads(re.search(rf"^# {key}: (.*)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_the_table_has_ten_cases() -> None:
    assert len(CASES) == 10
    table = (CASES_DIR / "README.md").read_text(encoding="utf-8")
    assert all(f"| {name} |" in table for name in CASES)


@pytest.mark.parametrize("name", CASES)
def test_each_case_is_caught_where_it_belongs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES_DIR)
    expected = _expected(name)
    try:
        program = sfdsl.load(f"{name}.sf")
    except CompileError as exc:
        assert sorted(d.headline() for d in exc.diagnostics) == sorted(expected["check"])
        assert any(d.is_error for d in exc.diagnostics) and not expected["run"] and not expected["answer"]
        return
    assert sorted(d.headline() for d in program.warnings) == sorted(expected["check"])
    text = (CASES_DIR / f"{name}.sf").read_text(encoding="utf-8")
    trace = tmp_path / "trace.jsonl"
    try:
        result = program.recipe().run(_header(text, "inputs"), backend=ScriptedBackend(_header(text, "replies")),
                                      trace=trace)
    except SfdslError as exc:
        assert [f"{type(exc).__name__}: {exc.located()}"] == expected["run"]
        assert "pydantic" not in str(exc) and "validation error" not in str(exc)
        return
    assert not expected["run"], "the run was expected to fail"
    assert [str(result.answer)] == expected["answer"]
    logged = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()]
    for event in expected["event"]:
        event_name, *pairs = event.split()
        fields = dict(pair.split("=", 1) for pair in pairs)
        assert any(e["event"] == event_name and all(str(e.get(k)) == v for k, v in fields.items())
                   for e in logged), event


def test_a_template_reads_a_field_of_a_list_as_an_expression_does() -> None:
    source = (CASES_DIR / "template_field_of_list.sf").read_text(encoding="utf-8").replace(
        ". First ended by {{ samples[0].finsh }}", " and {{ samples[1].finish }}")
    backend = ScriptedBackend(["4", "5", "ok"])
    sfdsl.compile(source).recipe().run(q="2+2?", backend=backend)
    assert backend.requests[-1].prompt.canonical() == "Answers: ['4', '5'] and eos."
