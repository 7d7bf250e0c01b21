"""The table of example mistakes names each common syntax error; expected tokens are shown as literals."""

from __future__ import annotations

import re

import pytest
from lark.exceptions import UnexpectedToken

from sfdsl.errors import CompileError
from sfdsl.grammar.loader import parser
from sfdsl.parser import parse
from sfdsl.syntax_errors import MISTAKES, mistake_for


def diagnostics_of(source: str) -> list:
    with pytest.raises(CompileError) as info:
        parse(source, file="t.sf")
    return info.value.diagnostics


@pytest.mark.parametrize(("label", "example"), [(k, e) for k, m in MISTAKES.items() for e in m.snippets()])
def test_every_example_is_recognised_as_its_mistake(label: str, example: str) -> None:
    with pytest.raises(UnexpectedToken) as info:
        parser().parse(example)
    assert mistake_for(info.value.state.position, info.value.token.type) == label


@pytest.mark.parametrize(
    ("source", "code", "message", "hint"),
    [
        ("recipe a() {\n  x = a < b <= c\n}", "SF110", "comparisons cannot be chained", "`and`"),
        ("recipe a() {\n  if x = 2 { y = 1 }\n}", "SF111", "'=' inside an expression", "'=='"),
        ("recipe a() {\n  stop when n = 3\n}", "SF111", "'=' inside an expression", "'=='"),
        ("recipe a() {\n  x = generate p (n: 2 temperature: 0.5)\n}", "SF112", "missing ','", "','"),
        ('recipe a() {\n  x = ["a" "b"]\n}', "SF112", "missing ','", "','"),
        ("recipe a() { x = 1 }\n}", "SF114", "unmatched '}'", "nothing open"),
        ("recipe a() {\n  x = 1\n\nrecipe b() { y = 2 }\n", "SF104", "never closed before the next 'recipe'", "'}'"),
        ("recipe a() {\n  x = f(1, 2\n  y = 3\n}", "SF104", "this '(' is never closed", "')'"),
        ("recipe a() {\n  x = [1, 2\n  return x\n}", "SF104", "this '[' is never closed", "']'"),
        ("recipe a() { return 1 }\nrecpie b() {}", "SF107", "did you mean 'recipe'", None),
        ("recipe a() {\n  next = 2\n}", "SF108", "'next' is a reserved word", "another name"),
        ("recipe a() {\n  draft generate p\n}", "SF106", "missing '=' after 'draft'", "draft = "),
        ("recipe a() {\n  x = generate p n: 3\n}", "SF100", "unexpected ':'", "in parentheses: `(n: ...)`"),
        ("recipe a(q: str) {\n  for x in q { }\n}", "SF107", "unknown statement 'for'", "map x in"),
        ("def a() {\n}", "SF100", "unexpected 'def' outside a recipe", "`recipe name("),
        ("recipe a(q: str) {\n  x = q +\n  return x\n}", "SF100", "unexpected 'return'",
         "ending in '+' on line 2, is unfinished"),
        ("recipe a() {\n  // note\n}", "SF100", "unexpected '/'", "comments start with '#'"),
        ("recipe a() {\n  x = 'a'\n}", "SF101", "unexpected character \"'\"", "double quotes"),
        ("recipe a() {\n  x = 1;\n}", "SF101", "unexpected character ';'", "without ';'"),
        ("recipe a() {\n  x = true && false\n}", "SF101", "unexpected character '&'", "`and`"),
    ],
)
def test_named_mistakes(source: str, code: str, message: str, hint: str | None) -> None:
    [diag] = diagnostics_of(source)
    assert diag.code == code
    assert message in diag.message
    if hint is not None:
        assert diag.hint is not None and hint in diag.hint


def test_expected_tokens_are_listed_as_literals() -> None:
    [diag] = diagnostics_of("recipe a(q: str {\n}")
    assert diag.code == "SF100" and diag.message == "unexpected '{'"
    assert diag.hint == "expected ')', ',' or '='"


def test_block_start_expects_a_statement() -> None:
    [diag] = diagnostics_of("recipe a() {\n  ,\n}")
    assert diag.hint == "expected a statement or '}'"


def test_code_ended_unexpectedly() -> None:
    [diag] = diagnostics_of("recipe a() {}\nimport ")
    assert diag.code == "SF105" and diag.message == "code ended unexpectedly"
    assert diag.hint == "expected a string"
    [diag] = diagnostics_of("recipe a() {\n  x = [1, 2")
    assert diag.code == "SF104" and diag.message == "code ended unexpectedly: this '[' is never closed"
    assert (diag.span.line, diag.span.column) == (2, 7)


@pytest.mark.parametrize(
    "source",
    [
        "recipe a() -> { }", "recipe a() { x = -> }", "recipe a() { x = 1 + * 2 }", "import 3",
        "recipe a() { if { } }", "recipe a() { x = {1: 2} }", "recipe a() { vote x by }", "recipe a() { return a: }",
        "recipe a() { x = extract from y }", "recipe a(q: list[) {}", 'recipe a() { prompt p = chat { "x" } }',
    ],
)
def test_messages_never_show_lark_internal_names(source: str) -> None:
    for diag in diagnostics_of(source):
        text = f"{diag.message} {diag.hint or ''}"
        assert "__ANON" not in text and "$END" not in text
        assert not re.search(r"\b[A-Z]{2,}(_[A-Z]+)*\b", text), text
