"""The OpenAI wire format: prompts rendered as ChatML, and the parts of a response sfdsl reads."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx

from sfdsl.agent_values import FunctionCall, MessageToolCall
from sfdsl.errors import BackendError
from sfdsl.runtime.backends.base import FinishReason, Prompt


def chatml(prompt: Prompt) -> str:
    """Render a chat prompt as ChatML text; a trailing assistant turn stays open.

    >>> from sfdsl.runtime.backends.base import Message
    >>> chatml(Prompt(messages=(Message(role="user", content="hi"),)))
    '<|im_start|>user\\nhi<|im_end|>\\n<|im_start|>assistant\\n'
    """
    messages = list(prompt.messages or [])
    turns = [f"<|im_start|>{m.role}\n{m.text_with_calls()}<|im_end|>\n" for m in messages]
    if prompt.has_prefill:
        turns[-1] = f"<|im_start|>assistant\n{messages[-1].content}"
    else:
        turns.append("<|im_start|>assistant\n")
    return "".join(turns)


def response_list(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list):
        raise BackendError(f"server response has no {key!r} list: {str(data)[:200]}")
    return value


def token_logprobs(logprobs: Any) -> list[tuple[str, float | None, int]] | None:
    """(token, logprob, char offset) triples from legacy or chat-style logprobs."""
    if not isinstance(logprobs, dict):
        return None
    if isinstance(logprobs.get("content"), list):  # chat format (and newer llama-server completions)
        tokens = [str(t.get("token", "")) for t in logprobs["content"]]
        values = [t.get("logprob") for t in logprobs["content"]]
        offsets = None
    elif isinstance(logprobs.get("token_logprobs"), list):
        tokens = [str(t) for t in logprobs.get("tokens") or [""] * len(logprobs["token_logprobs"])]
        values = logprobs["token_logprobs"]
        offsets = logprobs.get("text_offset")
    else:
        return None
    if not isinstance(offsets, list) or len(offsets) != len(tokens):
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return [(t, None if v is None else float(v), int(o)) for t, v, o in zip(tokens, values, offsets, strict=False)]


def first_top_logprobs(logprobs: Any) -> dict[str, float]:
    """The first generated token's top alternatives, token text -> logprob."""
    if not isinstance(logprobs, dict):
        return {}
    if isinstance(logprobs.get("content"), list) and logprobs["content"]:
        return {str(t["token"]): float(t["logprob"]) for t in logprobs["content"][0].get("top_logprobs") or []}
    top = logprobs.get("top_logprobs")
    if isinstance(top, list) and top and isinstance(top[0], dict):
        return {str(k): float(v) for k, v in top[0].items()}
    return {}


def finish_reason(choice: dict[str, Any], stop: tuple[str, ...]) -> FinishReason:
    reason = choice.get("finish_reason")
    if reason == "length":
        return "length"
    if "stop_reason" in choice:  # vLLM: the matched stop string, else a token id or null
        return "stop" if isinstance(choice["stop_reason"], str) else "eos"
    return "stop" if stop else "eos"


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]


__all__ = [
    "chatml",
    "finish_reason",
    "first_top_logprobs",
    "response_list",
    "retry_after",
    "server_message",
    "token_logprobs",
]


def wire_tool_choice(choice: str) -> str | dict[str, Any]:
    """OpenAI's ``tool_choice``: ``auto``, ``required`` and ``none`` as they are; a tool's name as a function choice.

    >>> wire_tool_choice("add")
    {'type': 'function', 'function': {'name': 'add'}}
    """
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def message_tool_calls(message: Any) -> tuple[MessageToolCall, ...]:
    """The tool calls of a response message, arguments kept as the JSON text the server sent.

    A call with no id gets ``call_<i>``; arguments sent as an object are written as JSON text.
    """
    calls = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(calls, list):
        return ()
    out = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise BackendError(f"server response has a tool call without a function: {str(call)[:200]}")
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else json.dumps(arguments if arguments is not None else {})
        out.append(MessageToolCall(id=str(call.get("id") or f"call_{i}"),
                                   function=FunctionCall(name=str(function.get("name") or ""), arguments=text)))
    return tuple(out)
