"""Dataset loading, column mapping and the offline generators."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sfdsl.errors import InputError, SfdslError
from sfdsl.eval import generate
from sfdsl.eval.data import DataError, build_items, load_rows, parse_assignments

TYPES = {"question": "str", "k": "int"}


def _jsonl(tmp_path: Path, rows: list[dict], name: str = "d.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_jsonl_default_mapping_and_ids(tmp_path: Path) -> None:
    p = _jsonl(tmp_path, [{"id": "a", "question": "q1", "answer": 1}, {"question": "q2", "answer": 2, "extra": 0}])
    items = build_items(load_rows(p), input_types=TYPES, required={"question"}, fixed={"k": "3"})
    assert [i.item_id for i in items] == ["a", "1"]
    assert items[0].inputs == {"k": 3, "question": "q1"} and items[1].gold == 2
    assert len({i.key for i in items}) == 2


def test_csv_field_mapping_gold_and_coercion(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("q,n,label\nhello,5,yes\nbye,7,no\n")
    items = build_items(
        load_rows(p), input_types=TYPES, required={"question", "k"}, field_map={"question": "q", "k": "n"}, gold="label"
    )
    assert [(i.inputs, i.gold) for i in items] == [
        ({"question": "hello", "k": 5}, "yes"),
        ({"question": "bye", "k": 7}, "no"),
    ]
    assert (
        len(
            build_items(
                load_rows(p), input_types=TYPES, required=(), field_map={"question": "q"}, gold="label", limit=1
            )
        )
        == 1
    )


def test_item_key_changes_with_content(tmp_path: Path) -> None:
    a = build_items(load_rows(_jsonl(tmp_path, [{"question": "x", "answer": 1}])), input_types=TYPES, required=())
    b = build_items(load_rows(_jsonl(tmp_path, [{"question": "x", "answer": 2}])), input_types=TYPES, required=())
    assert a[0].key != b[0].key


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ('{"question": "q", "answer": 1}\n{broken\n', ".jsonl", r"d\.jsonl:2: invalid JSON"),
        ("[1, 2]\n", ".jsonl", "expected a JSON object"),
        ("", ".jsonl", "no rows"),
        ("q,answer\na,b,c\n", ".csv", "more fields than the header"),
        ("x", ".parquet", "unknown dataset format"),
    ],
)
def test_bad_files_raise_data_error(tmp_path: Path, content: str, suffix: str, message: str) -> None:
    p = tmp_path / f"d{suffix}"
    p.write_text(content)
    with pytest.raises(DataError, match=message):
        load_rows(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dataset not found"):
        load_rows(tmp_path / "nope.jsonl")


def test_mapping_errors_are_input_errors(tmp_path: Path) -> None:
    rows = load_rows(_jsonl(tmp_path, [{"question": "q", "answer": 1}, {"q": "x"}]))
    assert issubclass(DataError, InputError) and issubclass(DataError, SfdslError)
    with pytest.raises(DataError, match="no column for recipe input 'k'"):
        build_items(rows, input_types=TYPES, required={"k"})
    with pytest.raises(DataError, match=r"d\.jsonl:2: row has no gold column 'answer'"):
        build_items(rows, input_types=TYPES, required=(), source=str(tmp_path / "d.jsonl"))
    with pytest.raises(DataError, match="recipe has no input 'nope'"):
        build_items(rows, input_types=TYPES, required=(), field_map={"nope": "q"})
    with pytest.raises(DataError, match="cannot read 'x' as int"):
        build_items(rows, input_types=TYPES, required=(), fixed={"k": "x"})
    with pytest.raises(DataError, match="both by --field and by -i"):
        build_items(rows, input_types=TYPES, required=(), field_map={"k": "q"}, fixed={"k": "1"})
    with pytest.raises(DataError, match="expects key=value"):
        parse_assignments(["novalue"], what="--field")


def test_generators_are_deterministic_and_balanced() -> None:
    a = generate.arithmetic(30, seed=1)
    assert a == generate.arithmetic(30, seed=1) and a != generate.arithmetic(30, seed=2)
    assert {r["difficulty"] for r in a} == {1, 2, 3}
    assert all(set(r) == {"id", "question", "answer", "difficulty"} for r in a)
    assert all(isinstance(r["answer"], int) and r["answer"] >= 0 for r in a)
    y = generate.yesno(200, seed=3, levels=[1, 2, 3])
    assert y == generate.yesno(200, seed=3, levels=[1, 2, 3])
    assert 40 < sum(r["answer"] == "yes" for r in y) < 160
    with pytest.raises(ValueError, match="unknown difficulty"):
        generate.arithmetic(3, levels=[9])


def test_arithmetic_gold_is_exact() -> None:
    """Re-derive each answer from the problem text."""
    for row in generate.arithmetic(300, seed=5):
        sentences = row["question"].split(". ")
        value = int(re.search(r"has (\d+)", sentences[0]).group(1))
        for s in sentences[1:]:
            nums = [int(n) for n in re.findall(r"\d+", s)]
            if "more" in s:
                value += nums[0]
            elif "give away" in s or "lose" in s:
                value -= nums[0]
            elif "equally among" in s:
                assert value % nums[0] == 0
                value //= nums[0]
            elif "double" in s or "triple" in s or "quadruple" in s or "times as large" in s:
                k = (
                    nums[0]
                    if nums
                    else {"double": 2, "triple": 3, "quadruple": 4}[re.search(r"(quadruple|double|triple)", s).group(1)]
                )
                value *= k
        assert value == row["answer"], row


def test_yesno_gold_is_exact() -> None:
    for row in generate.yesno(300, seed=9):
        q, truth = row["question"], row["answer"] == "yes"
        if m := re.fullmatch(r"Is (\d+) (greater|less) than (\d+)\?", q):
            a, b = int(m[1]), int(m[3])
            assert truth == (a > b if m[2] == "greater" else a < b)
        elif m := re.fullmatch(r"Is (\d+) an (even|odd) number\?", q):
            assert truth == ((int(m[1]) % 2 == 0) == (m[2] == "even"))
        elif m := re.fullmatch(r"Is (.+) the capital of (.+)\?", q):
            assert truth == (generate.CAPITALS[m[2]] == m[1])
        elif m := re.fullmatch(r"Is (\d+) (\+|times) (\d+) greater than (\d+) (\+|times) (\d+)\?", q):
            a, b, c, d = int(m[1]), int(m[3]), int(m[4]), int(m[6])
            assert truth == ((a + b > c + d) if m[2] == "+" else (a * b > c * d))
        else:
            pytest.fail(f"unknown template: {q}")


@pytest.mark.parametrize(("value", "message"), [("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                                                ("7" * 100_000, "100000 digits")], ids=["deep", "bigint"])
def test_jsonl_nested_100k_deep_or_with_a_100k_digit_integer_is_a_data_error(value: str, message: str,
                                                                            tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": ' + value + ', "answer": 1}\n')
    with pytest.raises(DataError, match=message):
        load_rows(path)
