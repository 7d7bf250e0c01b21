"""Prompt templates render in a sandbox; values never become template code."""

from __future__ import annotations

import pytest

from sfdsl.templates import TemplateError, render, to_template, variables
from sfdsl.values import Score, Text


def test_variables_found_statically() -> None:
    assert variables("{{ q }} {% for h in history %}{{ h.value }}{{ loop.index }}{% endfor %}") == {"q", "history"}


def test_injection_payloads_render_literally() -> None:
    payload = "{{ 7*7 }}{% raw %}{{ x }}"
    assert render("Q: {{ q }}", {"q": payload}) == f"Q: {payload}"


@pytest.mark.parametrize(
    "template",
    ["{{ q.__class__ }}", "{{ q.__class__.__mro__[1].__subclasses__() }}", "{{ cycler.__init__.__globals__ }}",
     "{{ q.upper.__self__ }}"],
)
def test_sandbox_blocks_python_internals(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, {"q": "x"})


def test_undefined_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ missing }}", {})


def test_records_render_as_primary_value_with_fields() -> None:
    sample = to_template(Text(text="hello", tokens=3))
    score = to_template(Score(score=0.25, label="yes"))
    assert str(sample) == "hello" and sample["tokens"] == 3
    assert render("{{ s.label }} {{ s.score }}", {"s": Score(score=0.25, label="yes")}) == "yes 0.25"
    assert score["label"] == "yes"


def test_for_nested_150_deep_is_refused_before_jinja_parses_it() -> None:
    from sfdsl.templates import MAX_BLOCK_NESTING

    deep = "{% for x in y %}" * 150 + "{{ x }}" + "{% endfor %}" * 150
    with pytest.raises(TemplateError, match=f"nest more than {MAX_BLOCK_NESTING} deep"):
        variables(deep)
    ok = "{% for x in y %}" * MAX_BLOCK_NESTING + "{{ x }}" + "{% endfor %}" * MAX_BLOCK_NESTING
    assert variables(ok) == {"y"}


def test_block_set_counts_as_nesting_and_assignment_does_not() -> None:
    text = "{% set a %}{% for i in q %}{{ i }}{% endfor %}{% endset %}{% set b = 1 %}{{ a }}{{ b }}{{ w }}"
    assert variables(text) == {"q", "w"}


def test_variables_answers_are_reused_and_not_shared() -> None:
    first = variables("{{ a }} {{ b }}")
    first.add("mutated")
    assert variables("{{ a }} {{ b }}") == {"a", "b"}
