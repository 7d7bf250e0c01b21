"""Recipe regexes run on RE2: linear time at run time, and a pattern RE2 cannot run is a located check error."""

from __future__ import annotations

import pytest

import sfdsl
from sfdsl import regexes
from sfdsl.expressions import evaluate


def _lookup(values: dict[str, object]):  # type: ignore[no-untyped-def]
    return lambda name: values[name]


def test_matches_nested_quantifier_on_27_chars_runs_in_linear_time() -> None:
    program = sfdsl.compile('recipe r(q: str) {\n  ok = q matches /^(a+)+$/\n  return answer: ok\n}\n')
    assert program.recipe().run({"q": "a" * 40 + "b"}, backend=sfdsl.ScriptedBackend([])).answer is False
    assert regexes.search("^(a+)+$", "a" * 100_000 + "b") is False
    assert regexes.search("^(a+)+$", "a" * 27)


@pytest.mark.parametrize(("pattern", "why"), [
    ("(?=x)y", "invalid perl operator"),
    (r"(a)\1", "invalid escape sequence"),
    ("a{2000}", "invalid repetition size"),
])
def test_patterns_re2_cannot_run_are_refused_at_check_time_with_a_location(pattern: str, why: str) -> None:
    source = f'recipe r(q: str) {{\n  ok = q matches /{pattern}/\n  return answer: ok\n}}\n'
    with pytest.raises(sfdsl.CompileError) as info:
        sfdsl.compile(source)
    (diag,) = info.value.diagnostics
    assert diag.code == "SF314" and why in diag.message and (diag.span.line, diag.span.column) == (2, 18)


def test_extract_and_matching_params_are_checked_too() -> None:
    source = ('recipe r(q: str) {\n  prompt p = "{{ q }}"\n  a = generate p\n'
              '  x = extract regex /(?<=a)b/ from a\n  e = evaluate critique p (pass: "(?!x)")\n'
              "  return answer: x\n}\n")
    with pytest.raises(sfdsl.CompileError) as info:
        sfdsl.compile(source)
    found = sorted((d.code, d.span.line) for d in info.value.diagnostics if d.is_error)
    assert found == [("SF314", 4), ("SF314", 5)]


def test_flags_and_unicode_offsets() -> None:
    assert regexes.search("abc", "xABCx", "i") and not regexes.search("abc", "xABCx")
    assert regexes.search("^b$", "a\nb\nc", "m") and not regexes.search("^b$", "a\nb\nc")
    assert regexes.search("a.b", "a\nb", "s") and not regexes.search("a.b", "a\nb")
    spans = [(m.group(1), m.start(), m.end()) for m in regexes.finditer(r"é(\d)", "éé1 é2")]
    assert spans == [("1", 1, 3), ("2", 4, 6)]


def test_matches_with_a_regex_built_at_run_time_is_an_expression_error() -> None:
    from sfdsl import ast
    from sfdsl.diagnostics import Span
    from sfdsl.expressions import ExprError

    span = Span(file="f")
    node = ast.BinOp(span=span, op="matches", left=ast.Name(span=span, id="q"),
                     right=ast.RegexLit(span=span, pattern="(?=x)", flags=""))
    with pytest.raises(ExprError, match="matches"):
        evaluate(node, _lookup({"q": "x"}))
