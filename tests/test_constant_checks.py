"""Literal parameter values the runtime cannot use are compile errors with a code, a caret and a hint."""

from __future__ import annotations

import pytest

import sfdsl
from sfdsl.cli import main
from sfdsl.compiler import compile_text
from sfdsl.errors import CompileError

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


@pytest.mark.parametrize(("args", "message"), [
    ("(n: 0)", "'n: 0' of generate is out of range: it must be at least 1"),
    ("(top_p: 0)", "'top_p: 0' of generate is out of range: it must be above 0"),
    ("(top_k: -1)", "'top_k: -1' of generate is out of range: it must be at least 0"),
    ("(max_tokens: 2 - 2)", "'max_tokens: 0' of generate is out of range: it must be at least 1"),
])
def test_a_constant_out_of_its_range_is_sf320(args: str, message: str) -> None:
    with pytest.raises(CompileError) as info:
        compile_text(f'recipe r() {{\n  prompt p = "x"\n  a = generate p {args}\n  return a\n}}')
    assert [(d.code, d.message) for d in info.value.diagnostics] == [("SF320", message)]


def test_a_model_declaration_is_held_to_the_same_ranges() -> None:
    with pytest.raises(CompileError) as info:
        compile_text('recipe r() {\n  model m = llama(max_tokens: 0, top_p: 1)\n  prompt p = "x"\n'
                     '  a = generate p\n  return a\n}')
    assert [(d.code, d.message) for d in info.value.diagnostics] == [
        ("SF320", "'max_tokens: 0' of model 'm' is out of range: it must be at least 1")]
