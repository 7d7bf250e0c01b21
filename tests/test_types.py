"""Static types: frozen type objects, assignability, joins, parsing and expression inference."""

from __future__ import annotations

import dataclasses

import pytest

from sfdsl import ast
from sfdsl.parser import parse
from sfdsl.types import (
    ANY,
    FLOAT,
    INT,
    RESULT,
    SCORE,
    STR,
    TEXT,
    VOTE,
    ExprTyper,
    Type,
    assignable,
    elem,
    join,
    list_of,
    parse_type,
)


def test_types_are_frozen_and_compare_by_value() -> None:
    assert list_of(STR) == list_of(STR)
    assert hash(list_of(STR)) == hash(list_of(STR))
    with pytest.raises(dataclasses.FrozenInstanceError):
        STR.name = "int"  # type: ignore[misc]


@pytest.mark.parametrize("text", ["str", "int", "float", "bool", "any", "list[str]", "list[list[int]]", "vote"])
def test_parse_type_round_trips(text: str) -> None:
    parsed = parse_type(text)
    assert parsed is not None and str(parsed) == text


@pytest.mark.parametrize("text", ["string", "list[nope]", "list[", ""])
def test_parse_type_rejects_unknown_names(text: str) -> None:
    assert parse_type(text) is None


def test_list_element_without_slicing() -> None:
    assert elem(list_of(TEXT)) == TEXT
    assert elem(STR) == ANY
    assert list_of(INT).is_list and not INT.is_list


@pytest.mark.parametrize(("src", "dst", "ok"), [
    (INT, FLOAT, True), (FLOAT, INT, False), (SCORE, FLOAT, True), (TEXT, STR, True), (VOTE, STR, True),
    (STR, TEXT, False), (list_of(INT), list_of(FLOAT), True), (STR, list_of(STR), True), (ANY, INT, True),
    (list_of(STR), STR, False),
])
def test_assignable(src: Type, dst: Type, ok: bool) -> None:
    assert assignable(src, dst) is ok


def test_join_is_the_least_covering_type() -> None:
    assert join(INT, FLOAT) == FLOAT
    assert join(FLOAT, INT) == FLOAT
    assert join(STR, INT) == ANY


def test_records_declare_their_fields() -> None:
    assert VOTE.field("share") == FLOAT
    assert VOTE.field("nope") is None
    assert "abstained" in RESULT.field_names()


def _infer(expr_text: str, names: dict[str, Type]) -> tuple[Type, list[tuple[str, str]]]:
    module = parse(f"recipe r() {{ x = {expr_text}\n return x }}")
    stmt = module.recipes[0].body.stmts[0]
    assert isinstance(stmt, ast.Assign)
    problems: list[tuple[str, str]] = []
    typer = ExprTyper(lambda node: names.get(node.id), lambda code, msg, node, hint: problems.append((code, msg)))
    return typer.infer(stmt.value), problems


@pytest.mark.parametrize(("expr", "expected"), [
    ("1 + 2", "int"), ("1 / 2", "float"), ("[1, 2.5]", "list[float]"), ("xs.text", "list[str]"),
    ("v.share", "float"), ('"a" + t', "str"), ("len(xs)", "int"), ("xs[0]", "text"), ("not v", "bool"),
])
def test_infer(expr: str, expected: str) -> None:
    inferred, problems = _infer(expr, {"xs": list_of(TEXT), "v": VOTE, "t": TEXT})
    assert problems == []
    assert str(inferred) == expected


@pytest.mark.parametrize(("expr", "code"), [
    ("v.nope", "SF302"), ("t * 2", "SF301"), ('xs["a"]', "SF301"), ("nope(1)", "SF203"), ('t matches "x"', "SF303"),
])
def test_infer_reports_type_errors(expr: str, code: str) -> None:
    _, problems = _infer(expr, {"xs": list_of(TEXT), "v": VOTE, "t": TEXT})
    assert [c for c, _ in problems] == [code]
