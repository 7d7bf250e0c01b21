"""Literal parameter values the runtime cannot use are compile errors with a code, a caret and a hint."""

from __future__ import annotations

import pytest

import sfdsl
from sfdsl.cli import main

LOOKAHEAD = """recipe r(q: str) {
  prompt p = "{{ q }}"
  a = generate p (regex: /(?=a)b/)
  return a
}
"""


def test_a_lookahead_regex_constraint_is_a_compile_error_with_a_caret() -> None:
    with pytest.raises(sfdsl.CompileError) as caught:
        sfdsl.compile(LOOKAHEAD)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "SF312" and "look-around" in (diagnostic.hint or "")
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 28)  # the '?' after '('
    rendered = caught.value.render()
    assert "(regex: /(?=a)b/)" in rendered and "^" in rendered


def test_sfrun_check_reports_it(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "r.sf"
    path.write_text(LOOKAHEAD)
    assert main(["check", str(path)]) == 1
    assert "error[SF312]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ('regex: "[0-9]+"', None),
        ("regex: /(yes|no)/", None),
        ('grammar: "root ::= \\"yes\\" | \\"no\\""', None),
        ('grammar: "root ::= yes"', "SF313"),
        ("regex: /a\\b/", "SF312"),
    ],
)
def test_generate_constraints(args: str, code: str | None) -> None:
    source = f'recipe r(q: str) {{\n  prompt p = "{{{{ q }}}}"\n  a = generate p ({args})\n  return a\n}}\n'
    if code is None:
        sfdsl.compile(source)
        return
    with pytest.raises(sfdsl.CompileError) as caught:
        sfdsl.compile(source)
    assert [d.code for d in caught.value.diagnostics] == [code]


@pytest.mark.parametrize(("weights", "bad"), [('["a", 1]', ["element 0"]), ("[1, 0.5]", []),
                                              ("[true, \"x\", 2]", ["element 1"])])
def test_literal_weights_are_checked_element_by_element(weights: str, bad: list[str]) -> None:
    source = ('recipe r(q: str) {\n  prompt p = "{{ q }}"\n  xs = generate p (n: 2)\n'
              f"  return vote xs by weighted (weights: {weights})\n}}\n")
    if not bad:
        sfdsl.compile(source)
        return
    with pytest.raises(sfdsl.CompileError) as caught:
        sfdsl.compile(source)
    messages = [d.message for d in caught.value.diagnostics]
    assert [d.code for d in caught.value.diagnostics] == ["SF306"] * len(bad)
    assert all(any(b in m for m in messages) for b in bad)


def test_a_matching_regex_re2_rejects_is_a_compile_error() -> None:
    source = ('recipe r(q: str) {\n  prompt p = "{{ q }}"\n'
              "  d = deepen p (budget: 4, max_total: 16, done: /(ab/)\n  return d\n}\n")
    with pytest.raises(sfdsl.CompileError) as caught:
        sfdsl.compile(source)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "SF314" and "missing )" in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 49)  # the literal (RE2 gives no position)
