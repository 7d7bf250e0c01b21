"""Expression evaluation: arithmetic, comparisons, NoAnswer propagation, fields, built-ins and errors."""

from __future__ import annotations

from typing import Any

import pytest

from sfdsl import ast
from sfdsl.expressions import ExprError, NotStatic, evaluate, scalar, truthy
from sfdsl.parser import parse
from sfdsl.steps.cluster import Clusters
from sfdsl.values import NoAnswer, Score, Text, VoteOutcome

VALUES: dict[str, Any] = {
    "t": Text(text="The answer is 4", tokens=4),
    "s": Score(score=0.25, label="B"),
    "v": VoteOutcome(answer=4, share=0.75, votes=3, total=4),
    "c": Clusters(groups=[[0, 2], [1]], sizes=[2, 1], largest=4, share=2 / 3, count=2, entropy=0.6365),
    "none_": NoAnswer(),
    "xs": [Text(text="a"), Text(text="b")],
    "n": 3,
}


def _expr(text: str) -> Any:
    stmt = parse(f"recipe r() {{ x = {text}\n return x }}").recipes[0].body.stmts[0]
    assert isinstance(stmt, ast.Assign)
    return stmt.value


def _eval(text: str) -> Any:
    def lookup(name: str) -> Any:
        if name not in VALUES:
            raise NotStatic(name)
        return VALUES[name]

    return evaluate(_expr(text), lookup)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 + 2 * 3", 7), ("7 / 2", 3.5), ("7 % 4", 3), ("-n + 1", -2), ('"a" + "b"', "ab"),
    ("s.score * 4", 1.0), ("v + 1", 5), ("v.share > 0.5", True), ("c.sizes[0]", 2), ("c.largest == 4", True),
    ("t matches /answer is \\d/", True), ('"is" in t', True), ("4 in [1, 4]", True), ("xs.text", ["a", "b"]),
    ("len(xs)", 2), ("max(1, 5, 3)", 5), ("mean([1, 2, 3])", 2), ("round(2.567, 1)", 2.6), ("argmax([1, 9, 3])", 1),
    ("log(1)", 0.0), ('lookup({"a": 1}, "A")', 1), ("4.0 == 4", True), ("not none_", True),
    ("none_ == none", True), ("none_ != 4", True),
])
def test_evaluate(text: str, expected: Any) -> None:
    assert _eval(text) == expected


def test_no_answer_propagates_through_arithmetic_and_is_false() -> None:
    assert isinstance(_eval("none_ + 1"), NoAnswer)
    assert _eval("none_ < 3") is False
    assert not truthy(VALUES["none_"])
    assert _eval("mean([none_, 2, 4])") == 3


@pytest.mark.parametrize(("text", "message"), [
    ("1 / 0", "division by zero"), ("t.nope", "has no field 'nope'"), ("xs[5]", "out of range"),
    ('[1] < "a"', "cannot compare"), ("-xs", "cannot negate"),
])
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ExprError, match=message) as info:
        _eval(text)
    assert info.value.node.span.line == 1


def test_unknown_names_are_not_static() -> None:
    with pytest.raises(NotStatic, match="later"):
        _eval("later + 1")


def test_scalar_reads_the_primary_value() -> None:
    assert scalar(VALUES["t"]) == "The answer is 4"
    assert scalar(VALUES["s"]) == 0.25
    assert scalar(VALUES["v"]) == 4
    assert scalar(VALUES["c"]) == 4


def test_join_that_would_build_a_huge_text_is_refused_before_building_it() -> None:
    from sfdsl.expressions import MAX_JOIN_CHARS

    node = _expr('join(xs, s)')
    with pytest.raises(ExprError, match=f"limit {MAX_JOIN_CHARS}"):
        evaluate(node, {"xs": ["a"] * 100_000, "s": "x" * 1000}.__getitem__)
    assert evaluate(node, {"xs": ["a", "b"], "s": ", "}.__getitem__) == "a, b"
