"""Only sfdsl errors leave the API: located at the failing .sf step, the original exception chained."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.errors import BudgetExceeded, CompileError, ScriptExhausted, StepError

ONE_STEP = """recipe one(q: str) {
  prompt p = "{{ q }}"
  said = generate p (max_tokens: 8)
  return said
}
"""

IN_MAP = """recipe mapped(q: str) {
  prompt p = "{{ q }} {{ x }}"
  xs = [1, 2, 3]
  out = map x in xs {
    yield generate p (max_tokens: 4)
  }
  return answer: out
}
"""

IN_VOTE = """recipe voted(q: str) {
  prompt p = "{{ q }}"
  v = vote 3 times by majority {
    yield generate p (max_tokens: 4)
  }
  return v
}
"""


def _boom(prompt: str, index: int) -> str:
    raise ValueError("the callable failed")


def test_a_valueerror_of_a_scripted_callable_arrives_as_a_located_sfdsl_error() -> None:
    with pytest.raises(sfdsl.SfdslError) as caught:
        sfdsl.compile(ONE_STEP).recipe().run(q="hi", backend=ScriptedBackend(_boom))
    error = caught.value
    assert isinstance(error, StepError) and not isinstance(error, BaseExceptionGroup)
    assert isinstance(error.__cause__, ValueError) and str(error.__cause__) == "the callable failed"
    assert error.location == "<string>:3:3" and error.node_id == "one/said"
    assert error.located() == "<string>:3:3: ValueError: the callable failed"


@pytest.mark.parametrize(("source", "line"), [(IN_MAP, 5), (IN_VOTE, 4)])
def test_failures_inside_nested_task_groups_are_one_error_at_the_inner_step(source: str, line: int) -> None:
    async def go() -> None:
        await sfdsl.compile(source).recipe().arun(q="hi", backend=ScriptedBackend(_boom))

    with pytest.raises(StepError) as caught:
        asyncio.run(go())
    assert caught.value.location == f"<string>:{line}:5"
    assert isinstance(caught.value.__cause__, ValueError)


def test_backend_errors_keep_their_class_and_gain_the_step_location() -> None:
    with pytest.raises(ScriptExhausted) as caught:
        sfdsl.compile(ONE_STEP).recipe().run(q="hi", backend=ScriptedBackend([]))
    assert caught.value.location == "<string>:3:3"
    assert caught.value.located().startswith("<string>:3:3: scripted backend has no reply")


def test_a_timeout_is_budget_exceeded_located_at_the_recipe() -> None:
    slow = ScriptedBackend(["x"], latency=5.0)
    with pytest.raises(BudgetExceeded) as caught:
        sfdsl.compile(ONE_STEP).recipe().run(q="hi", backend=slow, budget=sfdsl.Budget(timeout_s=0.05))
    assert caught.value.location == "<string>:1:8" and caught.value.partial is not None


def test_a_non_utf8_file_is_a_located_compile_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.sf"
    bad.write_bytes(b"recipe r(q: str) { return q } # caf\xe9\n")
    with pytest.raises(CompileError, match=r"latin1.sf:1:36: error\[SF507\]: cannot read .*not UTF-8"):
        sfdsl.load(bad)


def test_located_is_one_line_and_does_not_repeat_the_location() -> None:
    error = StepError("bad\nmore detail", location="r.sf:2:3")
    assert error.located() == "r.sf:2:3: bad"
    plain = sfdsl.InputError("missing input")
    assert plain.located() == "missing input"
    plain.locate("r.sf:1:1")
    plain.locate("r.sf:9:9")  # the first, most precise place wins
    assert plain.located() == "r.sf:1:1: missing input"


def test_an_unexpected_compiler_failure_is_an_internal_error_with_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    import sfdsl.api

    def broken(text: str, **options: object) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(sfdsl.api, "compile_text", broken)
    with pytest.raises(sfdsl.InternalError, match="compiling failed unexpectedly: TypeError: a bug") as caught:
        sfdsl.compile(ONE_STEP)
    assert isinstance(caught.value.__cause__, TypeError)
