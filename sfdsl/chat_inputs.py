"""Chat messages to recipe inputs: the one mapping shared by `sfrun serve`, MCP and the LangChain model.

A chat request names no recipe input, so the mapping is a convention:

* the last user message goes to the input named ``question``, else to the
  recipe's first ``str`` input;
* request fields ``n``, ``seed``, ``temperature`` and ``max_tokens`` go to recipe
  inputs of those names when the recipe declares them (and are ignored otherwise);
* explicit ``extra`` inputs (``extra_body: {"sfdsl": {"inputs": {...}}}``)
  are applied last, over everything else.

Example:
    >>> from sfdsl.chat_inputs import ChatMessage, inputs_from_chat
    >>> inputs_from_chat([("question", "str"), ("n", "int")], [ChatMessage(role="user", content="2+2?")],
    ...                  request_fields={"n": 3, "seed": 7})
    {'question': '2+2?', 'n': 3}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from sfdsl.errors import InputError

#: Request fields that map to same-named recipe inputs when the recipe declares them.
REQUEST_FIELDS = ("n", "seed", "temperature", "max_tokens")


class ChatMessage(BaseModel):
    """One message of a chat request; content is plain text."""

    model_config = ConfigDict(frozen=True)

    role: str
    content: str


def text_input(params: Sequence[tuple[str, str]], *, recipe: str = "recipe") -> str:
    """The input that takes the user's message: ``question``, else the first ``str`` input.

    Args:
        params: (name, type) of each recipe input, in declaration order.

    Raises:
        InputError: when the recipe has no ``str`` input.
    """
    names = {name: type_name for name, type_name in params}
    if names.get("question") == "str":
        return "question"
    for name, type_name in params:
        if type_name == "str":
            return name
    raise InputError(f"recipe '{recipe}' has no str input to take the user's message")


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    """The content of the last user message.

    Raises:
        InputError: when there are no messages or no user message.
    """
    if not messages:
        raise InputError("'messages' must hold at least one message")
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    raise InputError("'messages' holds no user message")


def inputs_from_chat(
    params: Sequence[tuple[str, str]],
    messages: Sequence[ChatMessage],
    *,
    request_fields: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    recipe: str = "recipe",
) -> dict[str, Any]:
    """Recipe inputs for a chat request (values are not yet type-checked: bind them with ``bind_inputs``).

    Args:
        params: (name, type) of each recipe input, in declaration order.
        messages: the request's messages.
        request_fields: request fields named in ``REQUEST_FIELDS``; None values are skipped.
        extra: explicit inputs, applied last.
    """
    declared = {name for name, _ in params}
    inputs: dict[str, Any] = {text_input(params, recipe=recipe): last_user_text(messages)}
    for field in REQUEST_FIELDS:
        value = (request_fields or {}).get(field)
        if value is not None and field in declared:
            inputs[field] = value
    inputs.update(extra or {})
    return inputs
