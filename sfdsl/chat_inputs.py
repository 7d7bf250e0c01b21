"""Chat messages to recipe inputs: the one mapping in, shared by `sfrun serve`, MCP and the LangChain model.

A chat request names no recipe input, so the mapping is a convention:

* a recipe with a ``conversation`` input gets the whole conversation there;
  any other recipe gets the last user message in the input named ``question``,
  else in its first ``str`` input; a recipe whose inputs are all given
  explicitly needs neither;
* ``tools`` goes to the recipe's ``tools``-typed input and a response format's
  JSON Schema to its ``schema``-typed input;
* request fields ``n``, ``seed``, ``temperature``, ``top_p``, ``max_tokens``,
  ``stop``, ``tool_choice`` and ``parallel_tool_calls`` go to recipe inputs of
  those names when the recipe declares them; ``unplaced_fields`` lists the ones
  it does not, so that each face can refuse them (or honour them its own way);
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

from sfdsl.agent_values import Message
from sfdsl.errors import InputError

#: Request fields that map to same-named recipe inputs when the recipe declares them.
REQUEST_FIELDS = ("n", "seed", "temperature", "top_p", "max_tokens", "stop", "tool_choice", "parallel_tool_calls")
#: Request fields that map to the recipe's input of a type: field -> input type.
TYPED_FIELDS = {"tools": "tools", "response_format": "schema"}
#: One chat turn (OpenAI's message shape).
ChatMessage = Message


class UnsupportedParameter(InputError):
    """Raised when a request sets a parameter the recipe cannot honour; ``param`` names it."""

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


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


def typed_input(params: Sequence[tuple[str, str]], type_name: str) -> str | None:
    """The first input of a type (e.g. ``conversation``, ``tools``, ``schema``), or None."""
    return next((name for name, kind in params if kind == type_name), None)


def last_user_text(messages: Sequence[Message]) -> str:
    """The content of the last user message.

    Raises:
        InputError: when there are no messages or no user message.
    """
    if not messages:
        raise InputError("'messages' must hold at least one message")
    for message in reversed(messages):
        if message.role == "user":
            return message.text
    raise InputError("'messages' holds no user message")


def message_inputs(params: Sequence[tuple[str, str]], messages: Sequence[Message], *,
                   given: Mapping[str, Any], recipe: str) -> dict[str, Any]:
    """Where the messages go: the whole conversation, or the last user message (see the module docstring)."""
    conversation = typed_input(params, "conversation")
    if conversation is not None:
        return {conversation: [m.model_dump(exclude_none=True) for m in messages]}
    if params and all(name in given for name, _ in params):
        return {}
    return {text_input(params, recipe=recipe): last_user_text(messages)}


def inputs_from_chat(
    params: Sequence[tuple[str, str]],
    messages: Sequence[Message],
    *,
    request_fields: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    recipe: str = "recipe",
) -> dict[str, Any]:
    """Recipe inputs for a chat request (values are not yet type-checked: bind them with ``bind_inputs``).

    Args:
        params: (name, type) of each recipe input, in declaration order.
        messages: the request's messages.
        request_fields: fields named in ``REQUEST_FIELDS`` or ``TYPED_FIELDS``; None values are skipped.
        extra: explicit inputs, applied last.
    """
    given = dict(extra or {})
    inputs = message_inputs(params, messages, given=given, recipe=recipe)
    inputs.update(placed_fields(params, request_fields or {}))
    inputs.update(given)
    return inputs


def placed_fields(params: Sequence[tuple[str, str]], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request fields a recipe declares an input for, by that input's name."""
    declared = {name for name, _ in params}
    placed = {name: value for name, value in fields.items()
              if value is not None and name in REQUEST_FIELDS and name in declared}
    for name, type_name in TYPED_FIELDS.items():
        target = typed_input(params, type_name)
        if fields.get(name) is not None and target is not None:
            placed[target] = fields[name]
    return placed


def unplaced_fields(params: Sequence[tuple[str, str]], fields: Mapping[str, Any]) -> list[str]:
    """The request fields (None values skipped) that no input of the recipe takes, in the given order."""
    placed = set(placed_fields(params, fields))
    typed = {name: typed_input(params, type_name) for name, type_name in TYPED_FIELDS.items()}
    return [name for name, value in fields.items()
            if value is not None and (typed[name] is None if name in typed else name not in placed)]
