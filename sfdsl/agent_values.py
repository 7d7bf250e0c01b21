"""Conversations, tool specs and tool calls in OpenAI's wire shape, and the canonical key of a JSON value.

These are the values every face shares (recipe inputs, ``sfrun serve``, LangChain, MCP):

* ``Message``: one turn of a conversation (role system/developer/user/assistant/tool, ``content``,
  ``tool_calls``, ``tool_call_id``, ``name``);
* ``ToolSpec``: a function tool, ``{"type": "function", "function": {"name", "description", "parameters"}}``;
* ``ToolCall``: a call the model chose, with its arguments decoded to a JSON object;
* ``canonical_json``: one text per JSON value, so that calls and records that differ only in key
  order, white space or number formatting (``2`` vs ``2.0``) compare equal.

Example:
    >>> canonical_json({"b": 3, "a": 2.0}) == canonical_json({"a": 2, "b": 3.0})
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Roles a conversation turn may have (OpenAI's, ``developer`` being the newer name of ``system``).
ROLES = ("system", "developer", "user", "assistant", "tool")
#: OpenAI's rule for function names.
TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TextPart(_Wire):
    """A text part of a message's content (``{"type": "text", "text": ...}``)."""

    type: Literal["text"] = "text"
    text: str


class FunctionCall(_Wire):
    """The function a tool call names, with its arguments as JSON text (OpenAI's shape)."""

    name: str
    arguments: str = "{}"


class MessageToolCall(_Wire):
    """A tool call as it stands in an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Wire):
    """One turn of a conversation, in OpenAI's chat-message shape."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The content as plain text (text parts joined; empty when there is none)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionSpec(_Wire):
    """A function tool's name, description and JSON-Schema parameters."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolSpec(_Wire):
    """A tool the model may call, in OpenAI's function-tool format."""

    type: Literal["function"] = "function"
    function: FunctionSpec

    @property
    def name(self) -> str:
        return self.function.name


class ToolCall(_Wire):
    """A call the model chose: its id, the tool's name and the arguments as a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self) -> MessageToolCall:
        """The call in an assistant message's ``tool_calls`` shape (arguments as JSON text)."""
        return MessageToolCall(id=self.id, function=FunctionCall(name=self.name,
                                                                 arguments=json.dumps(self.arguments)))

    @property
    def key(self) -> str:
        """The canonical key: calls with equal keys are the same action."""
        return canonical_call_key(self.name, self.arguments)


def _normal(value: Any) -> Any:
    """A JSON value with integral floats written as ints and mappings' keys as text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, Sequence):
        return [_normal(item) for item in value]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no white space, ``2.0`` written ``2``.

    Raises:
        TypeError: when the value is not JSON (a set, an object, NaN or infinity).
    """
    try:
        return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise TypeError(str(exc)) from exc


def canonical_call_key(name: str, arguments: Mapping[str, Any]) -> str:
    """The canonical key of a tool call: its name and its canonical arguments."""
    return f"{name}({canonical_json(dict(arguments))})"
