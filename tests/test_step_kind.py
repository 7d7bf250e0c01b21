"""The parameter specs' single sources: computed defaults (the temperature from ``n``) and the ``n`` list rule."""

from __future__ import annotations

import pytest

from sfdsl import ScriptedBackend, ast
from sfdsl.diagnostics import Span
from sfdsl.errors import StepError
from sfdsl.step_docs import _default
from sfdsl.step_kind import SAMPLED_TEMPERATURE, SAMPLES, SAMPLING, with_defaults
from sfdsl.steps import deepen, generate
from tests.conftest import run_source


@pytest.mark.parametrize(("given", "temperature"), [
    ({}, 0.0),
    ({"n": 1}, 0.0),
    ({"n": 3}, SAMPLED_TEMPERATURE),
    ({"n": 3, "temperature": 0.2}, 0.2),
    ({"n": 3, "temperature": 0}, 0.0),
])
def test_the_temperature_default_follows_n(given: dict[str, float], temperature: float) -> None:
    assert with_defaults(SAMPLES, given)["temperature"] == temperature


def test_a_spec_without_n_samples_greedily() -> None:
    assert with_defaults(SAMPLING, {})["temperature"] == 0.0


def test_a_computed_default_comes_after_the_range_check() -> None:
    with pytest.raises(StepError, match="'n' is 0"):
        with_defaults(SAMPLES, {"n": 0})


def test_the_docs_table_shows_the_computed_default_from_the_same_constant() -> None:
    assert f"{SAMPLED_TEMPERATURE:g}" in _default(SAMPLES["temperature"])


def _generate(*names: str) -> generate.Generate:
    span = Span(line=1, col=1)
    return generate.Generate(span=span, prompt="p", args=[ast.Arg(name=n, value=ast.Const(span=span, value=1),
                                                                   span=span) for n in names])


def test_n_given_even_as_one_makes_the_value_a_list() -> None:
    assert not _generate().returns_list and _generate().value_of(["a"]) == "a"
    assert _generate("n").returns_list and _generate("n").value_of(["a"]) == ["a"]


SOURCE = """recipe r(q: str) -> (answer, many, deep) {
  prompt p = "{{ q }}"
  one = generate p
  many = generate p (n: 2)
  deep = deepen p (n: 2, budget: 4, max_total: 4)
  return answer: one, many: many, deep: deep
}"""


def test_the_runtime_applies_the_specs_defaults_and_the_list_rule() -> None:
    backend = ScriptedBackend(["a", "b", "c", "d", "e"])
    result = run_source(SOURCE, backend, q="q")
    temperatures = [r.temperature for r in backend.requests]
    assert temperatures[:3] == [0.0, SAMPLED_TEMPERATURE, SAMPLED_TEMPERATURE]
    assert isinstance(result.answer, str) and len(result.outputs["many"]) == 2 and len(result.outputs["deep"]) == 2
    assert deepen.PARAMS["temperature"] is SAMPLES["temperature"]
