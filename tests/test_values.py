"""Run-time values: the action record, agent values read as fields, and returned actions split into tool calls."""

from __future__ import annotations

from sfdsl.agent_values import Message, ToolCall, ToolSpec
from sfdsl.values import Action, VoteOutcome, field_of, plain, split_actions

CALL = Action(kind="call", id="call_1", name="add", arguments={"a": 2, "b": 3})
SAME = Action(kind="call", id="call_2", name="add", arguments={"b": 3.0, "a": 2})
TEXT = Action(kind="text", text="It is sunny.")


def test_an_action_is_keyed_by_name_and_canonical_arguments() -> None:
    assert CALL.key == SAME.key == 'add({"a":2,"b":3})'
    assert CALL == SAME and len({CALL, SAME}) == 1 and CALL != TEXT
    assert str(TEXT) == "It is sunny."
    assert plain(CALL) == {"kind": "call", "id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}, "text": ""}
    assert field_of(CALL, "arguments") == {"a": 2, "b": 3}


def test_returned_call_actions_become_tool_calls_and_a_text_action_the_answer() -> None:
    answer, calls = split_actions(CALL, None)
    assert answer is None and calls == [ToolCall(id="call_1", name="add", arguments={"a": 2, "b": 3})]
    answer, calls = split_actions(VoteOutcome(answer=TEXT, share=1.0, votes=1, total=1), None)
    assert answer == "It is sunny." and calls == []
    answer, calls = split_actions("see the calls", [CALL, SAME])
    assert answer == "see the calls" and [c.id for c in calls] == ["call_1", "call_2"]
    _, calls = split_actions(CALL, CALL)  # the same action as the answer and in tool_calls counts once
    assert len(calls) == 1


def test_agent_values_are_read_as_fields() -> None:
    message = Message.model_validate({"role": "assistant", "content": [{"type": "text", "text": "hi"}],
                                      "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]})
    assert field_of(message, "content") == "hi"
    assert field_of(message, "tool_calls")[0]["function"]["name"] == "f"
    tool = ToolSpec.model_validate({"type": "function", "function": {"name": "add", "description": "adds"}})
    assert field_of(tool, "name") == "add" and field_of(tool, "description") == "adds"
