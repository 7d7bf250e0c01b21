"""A conversation (recipe input) spliced into a chat prompt: OpenAI messages as backend turns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sfdsl.agent_values import Message as WireMessage
from sfdsl.agent_values import ToolCall
from sfdsl.runtime.backends.base import Message

__all__ = ["ConversationError", "turns_of"]

#: OpenAI's roles as backend roles (``developer`` is the newer name of ``system``).
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


class ConversationError(ValueError):
    """A spliced value is not a conversation, or a tool call's arguments are not a JSON object."""


def turns_of(value: Any) -> list[Message]:
    """The backend turns of a conversation value (a list of ``sfdsl.agent_values.Message`` or their dicts).

    Raises:
        ConversationError: naming the first turn that cannot be read.
    """
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConversationError(f"a conversation is a list of messages, not {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        try:
            wire = item if isinstance(item, WireMessage) else WireMessage.model_validate(item)
        except ValueError as exc:
            raise ConversationError(f"turn {i} is not a chat message: {exc}") from None
        calls = tuple(_call(i, c.id, c.function.name, c.function.arguments) for c in wire.tool_calls or ())
        out.append(Message(role=_ROLES[wire.role], content=wire.text, name=wire.name,  # type: ignore[arg-type]
                           tool_calls=calls, tool_call_id=wire.tool_call_id))
    return out


def _call(turn: int, call_id: str, name: str, arguments: str) -> ToolCall:
    try:
        decoded = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        raise ConversationError(f"turn {turn}: the arguments of tool call {call_id!r} are not JSON: "
                                f"{exc.msg}") from None
    if not isinstance(decoded, dict):
        raise ConversationError(f"turn {turn}: the arguments of tool call {call_id!r} are not a JSON object")
    return ToolCall(id=call_id, name=name, arguments=decoded)
