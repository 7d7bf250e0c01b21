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
