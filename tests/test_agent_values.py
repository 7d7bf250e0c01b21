"""The canonical key of JSON values and tool calls: one key per value, however it is written."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sfdsl.agent_values import ToolCall, canonical_json
from sfdsl.json_schema import validation_problem
from sfdsl.runtime.voting import vote_key
from sfdsl.values import Action

SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "b": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "where": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}}},
    },
    "required": ["a", "b"],
}
_text = st.text(max_size=8)
_where = st.fixed_dictionaries({}, optional={"city": _text, "zip": st.integers(-10**6, 10**6)})
VALID = st.fixed_dictionaries(
    {"a": st.integers(-10**9, 10**9), "b": st.integers(-10**6, 10**6) | st.floats(-1e6, 1e6, allow_nan=False)},
    optional={"tags": st.lists(_text, max_size=4), "where": _where},
)


def _written(value: Any, rng: random.Random) -> str:
    """The value as JSON text, with shuffled keys, random spacing and integral numbers sometimes written 2.0."""
    pad = rng.choice(["", " ", "  ", "\n"])
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        body = f",{pad}".join(f"{json.dumps(k)}{pad}:{pad}{_written(v, rng)}" for k, v in items)
        return "{" + pad + body + pad + "}"
    if isinstance(value, list):
        return "[" + f",{pad}".join(_written(v, rng) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.5:
        return f"{value}.0"
    return json.dumps(value)


@settings(max_examples=200, deadline=None)
@given(VALID, st.integers(0, 2**32))
def test_any_valid_value_written_any_way_has_one_canonical_key(value: dict[str, Any], seed: int) -> None:
    rng = random.Random(seed)
    text = _written(value, rng)
    reread = json.loads(text)
    assert validation_problem(reread, SCHEMA) is None
    assert canonical_json(reread) == canonical_json(value)
    assert ToolCall(id="x", name="f", arguments=reread).key == ToolCall(id="y", name="f", arguments=value).key
    first = Action(kind="call", id="1", name="f", arguments=reread)
    second = Action(kind="call", id="2", name="f", arguments=value)
    assert vote_key(first) == vote_key(second)
    assert vote_key(reread) == vote_key(value)


def test_different_calls_have_different_keys() -> None:
    assert ToolCall(id="1", name="add", arguments={"a": 2}).key != ToolCall(id="1", name="add", arguments={"a": 3}).key
    assert vote_key(Action(kind="call", name="add", arguments={})) != vote_key(Action(kind="text", text="add({})"))
