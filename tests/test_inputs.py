"""Recipe inputs: one coercion path (a pydantic TypeAdapter per declared type) for API, CLI, eval and serve."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sfdsl.errors import InputError
from sfdsl.eval.data import DataError, coerce
from sfdsl.inputs import adapter, bind_inputs, convert
from sfdsl.parser import parse
from sfdsl.types import INT, list_of

RECIPE = parse('recipe r(q: str, n: int = 3, t: float = 0.5, ok: bool = false, xs: list[int] = []) { return q }'
               ).recipes[0]


@pytest.mark.parametrize(("value", "type_name", "from_text", "expected"), [
    ("8", "int", True, 8), (" 8 ", "int", True, 8), (8.0, "int", False, 8), ("0.25", "float", True, 0.25),
    (2, "float", False, 2.0), ("yes", "bool", True, True), ("0", "bool", True, False), (True, "bool", False, True),
    ("1, 2,3", "list[int]", True, [1, 2, 3]), ("[1, 2]", "list[int]", True, [1, 2]),
    ([1, "2"], "list[int]", False, [1, 2]), ("a,b", "list[str]", True, ["a", "b"]), ("hi", "str", False, "hi"),
    (5, "str", True, "5"), ({"k": 1}, "any", False, {"k": 1}),
])
def test_convert_accepts(value: Any, type_name: str, from_text: bool, expected: Any) -> None:
    assert convert(value, type_name, name="x", from_text=from_text) == expected


@pytest.mark.parametrize(("value", "type_name", "from_text"), [
    ("8.5", "int", True), (8.5, "int", False), (True, "int", False), (True, "float", False), ("maybe", "bool", True),
    (5, "str", False), ("[1, ", "list[int]", True), ("a,b", "list[int]", True), ("x", "list[str]", False),
])
def test_convert_rejects_with_the_input_name(value: Any, type_name: str, from_text: bool) -> None:
    with pytest.raises(InputError, match=rf"input 'x' must be {type_name.replace('[', '.').replace(']', '.')}"):
        convert(value, type_name, name="x", from_text=from_text)


def test_one_adapter_per_type() -> None:
    assert adapter(list_of(INT)) is adapter(list_of(INT))


def test_bind_inputs_fills_defaults_and_converts_text() -> None:
    bound = bind_inputs(RECIPE, {"q": "hi", "n": "5", "xs": "1,2"}, from_text=True)
    assert bound == {"q": "hi", "n": 5, "t": 0.5, "ok": False, "xs": [1, 2]}


def test_bind_inputs_names_unknown_and_missing_inputs() -> None:
    with pytest.raises(InputError, match=r"has no input 'nn' \(did you mean 'n'"):
        bind_inputs(RECIPE, {"q": "hi", "nn": 1})
    with pytest.raises(InputError, match="needs input 'q'"):
        bind_inputs(RECIPE, {})
    assert bind_inputs(RECIPE, {}, require_all=False)["n"] == 3


def test_eval_coerces_cells_along_the_same_path() -> None:
    assert coerce("1,2", "list[int]", where="cell") == convert("1,2", "list[int]", name="x", from_text=True)
    assert coerce(7, "str", where="cell") == 7  # JSON values pass through to bind_inputs
    with pytest.raises(DataError, match="cell: cannot read 'x' as int"):
        coerce("x", "int", where="cell")


CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "5"},
]
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]


def test_agent_inputs_bind_to_the_contract_types() -> None:
    from sfdsl.agent_values import Message, ToolSpec

    conversation = convert(CONVERSATION, "conversation", name="c")
    assert all(isinstance(m, Message) for m in conversation)
    assert conversation[2].tool_calls[0].function.name == "add"
    tools = convert(json.dumps(TOOLS), "tools", name="t", from_text=True)
    assert isinstance(tools[0], ToolSpec) and tools[0].name == "add"
    assert convert('{"type": "integer"}', "schema", name="s", from_text=True) == {"type": "integer"}


@pytest.mark.parametrize(("value", "type_name", "why"), [
    ([{"role": "robot", "content": "hi"}], "conversation", "0.role"),
    ("hello", "conversation", "list"),
    ([{"type": "function", "function": {"name": "two words"}}], "tools", "0.function.name"),
    (TOOLS + TOOLS, "tools", "given twice: add"),
    ({"type": "nope"}, "schema", "not a valid JSON Schema"),
    ([1, 2], "schema", "dict"),
])
def test_agent_inputs_reject_bad_values_naming_the_input(value: Any, type_name: str, why: str) -> None:
    with pytest.raises(InputError) as info:
        convert(value, type_name, name="x")
    assert f"input 'x' must be {type_name}" in str(info.value)
    assert why in str(info.value)


def test_agent_inputs_bind_through_the_recipe() -> None:
    recipe = parse("recipe r(c: conversation, t: tools, s: schema) { return c }").recipes[0]
    bound = bind_inputs(recipe, {"c": CONVERSATION, "t": TOOLS, "s": {"type": "object"}})
    assert bound["c"][3].tool_call_id == "call_1"
    with pytest.raises(InputError, match="input 't' must be tools"):
        bind_inputs(recipe, {"c": CONVERSATION, "t": [{"name": "add"}], "s": {}})


def test_cli_input_nested_5000_deep_is_an_input_error_not_a_recursion_error() -> None:
    with pytest.raises(InputError, match=r"input 'q' must be list\[int\]"):
        convert("[" * 5000 + "]" * 5000, "list[int]", name="q", from_text=True)


def test_input_error_shows_a_huge_value_cut_short() -> None:
    with pytest.raises(InputError) as info:
        convert("9" * 100_000, "int", name="n", from_text=True)
    assert len(str(info.value)) < 300
