"""Unit tests for compiling choices and regexes into GBNF."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfdsl.constraints import UnsupportedRegex, gbnf_for_choices, gbnf_for_regex, gbnf_literal

_UNESCAPE = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _parse_literal(lit: str) -> str:
    """Undo gbnf_literal, the way llama.cpp's GBNF parser reads a string literal."""
    assert lit[0] == lit[-1] == '"'
    body, out, i = lit[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            assert ch != '"', "unescaped quote inside a literal"
            out.append(ch)
            i += 1
        elif body[i + 1] == "x":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        else:
            out.append(_UNESCAPE[body[i + 1]])
            i += 2
    return "".join(out)


@given(st.text())
def test_literal_round_trips(text: str) -> None:
    assert _parse_literal(gbnf_literal(text)) == text


def test_choices_grammar() -> None:
    assert gbnf_for_choices(["Yes", "No", "Yes"]) == 'root ::= "Yes" | "No"'
    assert gbnf_for_choices(['say "hi"', "a\nb"]) == 'root ::= "say \\"hi\\"" | "a\\nb"'


def test_choices_need_one() -> None:
    with pytest.raises(ValueError):
        gbnf_for_choices([])


@pytest.mark.parametrize(
    ("pattern", "gbnf"),
    [
        (r"^\d{3}-\d{4}$", r'[0-9]{3} "-" [0-9]{4}'),
        (r"(yes|no)", r'("yes" | "no")'),
        (r"yes|no", r'"yes" | "no"'),
        (r"[A-Z][a-z]*", r"[A-Z] [a-z]*"),
        (r"ab+c?", r'"a" "b"+ "c"?'),
        (r"\w+@\w+\.(com|org)", r'[a-zA-Z0-9_]+ "@" [a-zA-Z0-9_]+ "." ("com" | "org")'),
        (r"[^\]\\-]+", r"[^\x5D\x5C\x2D]+"),
        (r"(?:ab){2,}", r'("ab"){2,}'),
        (r"(?P<n>x)+?", r'("x")+'),
        (r"a{b", r'"a{b"'),
        (r"\$\d+(\.\d\d)?", r'"$" [0-9]+ ("." [0-9] [0-9])?'),
        (r"[\d.]+", r"[0-9\x2E]+"),
        (r".", r"[^\n]"),
        (r"\D\S", r"[^0-9] [^ \t\n\r\x0B\x0C]"),
        (r"a|", r'"a" | ""'),
        (r"", r'""'),
        (r"\u00e9t[é-ü]", r'"ét" [\xE9-\xFC]'),
    ],
)
def test_regex_translation(pattern: str, gbnf: str) -> None:
    re.compile(pattern)  # every case is a valid Python regex too
    assert gbnf_for_regex(pattern) == f"root ::= {gbnf}"


@pytest.mark.parametrize(
    ("pattern", "offset"),
    [
        (r"(?=a)b", 1),
        (r"(a)\1", 3),
        (r"a**", 2),
        (r"(ab", 0),
        (r"ab)", 2),
        (r"[a-", 0),
        (r"\bword", 0),
        (r"a^b", 1),
        (r"a{3,1}", 1),
        (r"*a", 0),
        (r"[\D]", 3),
        (r"(?i)abc", 1),
    ],
)
def test_unsupported_regex(pattern: str, offset: int) -> None:
    with pytest.raises(UnsupportedRegex) as info:
        gbnf_for_regex(pattern)
    assert info.value.pos == offset
    assert repr(pattern) in str(info.value)
    assert isinstance(info.value, ValueError)
