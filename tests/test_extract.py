"""Extraction of typed values from text, with normalisation; failures are typed no-answers."""

from __future__ import annotations

import pytest

from sfdsl.runtime.extract import extract
from sfdsl.values import NoAnswer, Text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("The answer is 42.", 42), ("It costs $1,234.50 in total", 1234.5), ("-3 degrees", -3), ("1e3", 1000)],
)
def test_numbers(text: str, expected: float) -> None:
    assert extract("number", text) == expected


def test_after_marker_takes_the_value_following_the_last_marker() -> None:
    text = "First 3. The answer is 5. Hmm, wait. The answer is 8, since 8 > 5"
    assert extract("number", text, after=("The answer is", "")) == 8


def test_missing_marker_or_value_is_no_answer() -> None:
    assert isinstance(extract("number", "The answer is unclear", after=("The answer is", "")), NoAnswer)
    assert isinstance(extract("number", "no digits at all"), NoAnswer)
    assert isinstance(extract("choice", "maybe", choices=["yes", "no"]), NoAnswer)


def test_lists_map_elementwise_and_accept_samples() -> None:
    samples = [Text(text="The answer is 2"), Text(text="nothing"), NoAnswer()]
    out = extract("number", samples, after=("answer is", ""))
    assert out[0] == 2 and isinstance(out[1], NoAnswer) and isinstance(out[2], NoAnswer)


def test_choice_matches_whole_words_case_insensitively() -> None:
    assert extract("choice", "No, yesterday was fine", choices=["yes", "no"]) == "no"
    assert extract("choice", "Answer: (B) London", choices=["Paris", "London"], case="keep") == "London"


def test_regex_capture_and_normalisation() -> None:
    assert extract("regex", "Final: **Blue**.", pattern=(r"final: (\S+)", "i")) == "blue"
    assert extract("regex", "Final: **Blue**.", pattern=(r"Final: (\S+)", ""), case="keep") == "Blue"


def test_bool_and_list_and_text() -> None:
    assert extract("bool", "I believe the statement is false.") is False
    assert extract("list", "1. gravity\n2. Mass, inertia\n- gravity") == ["gravity", "Mass", "inertia"]
    assert extract("text", '  "Hello."  ') == "Hello"
