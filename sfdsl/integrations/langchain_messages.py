"""LangChain messages and tools to sfdsl's wire values, and a run's reply back to an ``AIMessage``.

The reply goes through ``sfdsl.chat_replies`` like every face: the content, tool calls
(``AIMessage.tool_calls``), an abstention (``additional_kwargs["refusal"]`` and
``response_metadata["refusal"]``) and the finish reason (``response_metadata["finish_reason"]``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCall, ToolCallChunk, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from sfdsl.agent_values import FunctionCall, Message, MessageToolCall
from sfdsl.chat_replies import ChatReply, chat_reply, sfdsl_object
from sfdsl.errors import InputError
from sfdsl.runtime.results import RunResult

#: LangChain message types as OpenAI roles.
ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "developer": "developer"}


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as a conversation (tool calls and tool results kept).

    Raises:
        InputError: for a message type with no chat role (e.g. a function message).
    """
    out = []
    for message in messages:
        role = ROLES.get(message.type)
        if role is None:
            raise InputError(f"a {message.type!r} message has no chat role; use human, ai, system or tool messages")
        calls = [MessageToolCall(id=c.get("id") or f"call_{i}", function=FunctionCall(
            name=c["name"], arguments=json.dumps(c.get("args", {})))) for i, c in enumerate(
            getattr(message, "tool_calls", None) or [])]
        tool_call_id = message.tool_call_id if isinstance(message, ToolMessage) else None
        content = message.text if message.text or not calls else None
        out.append(Message(role=role, content=content, tool_calls=calls or None,  # type: ignore[arg-type]
                           tool_call_id=tool_call_id))
    return out


def openai_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Tools as OpenAI function tools (LangChain tools, pydantic models, functions or tool dicts)."""
    return [convert_to_openai_tool(tool) for tool in tools]


def tool_choice_text(choice: Any, tools: Sequence[dict[str, Any]]) -> str | None:
    """LangChain's ``tool_choice`` as a recipe's ``tool_choice`` text (auto, required, none or a tool's name).

    ``"any"``, ``"required"`` and ``True`` ask for a call; a tool's name, or ``{"type": "function",
    "function": {"name": ...}}``, for a call of that tool.

    Raises:
        InputError: for a name that is not one of the tools, or a value of another shape.
    """
    if choice is None or choice == "auto":
        return None
    if choice is True or choice in ("any", "required"):
        return "required"
    if choice == "none":
        return "none"
    name = choice if isinstance(choice, str) else (choice.get("function") or {}).get("name") \
        if isinstance(choice, dict) else None
    names = [t["function"]["name"] for t in tools]
    if not isinstance(name, str) or name not in names:
        raise InputError(f"tool_choice {choice!r} is not auto, any, required, none or one of the tools {names}")
    return name


def reply_message(result: RunResult) -> AIMessage:
    """The run's reply as an ``AIMessage``."""
    reply = chat_reply(result)
    return AIMessage(**_fields(result, reply, reply.content or ""),
                     tool_calls=[ToolCall(name=c.name, args=c.arguments, id=c.id, type="tool_call")
                                 for c in reply.tool_calls])


def last_chunk(result: RunResult, *, streamed: str) -> AIMessageChunk:
    """The last ``AIMessageChunk`` of a stream: the content past ``streamed``, the tool calls, the metadata."""
    reply = chat_reply(result)
    content = reply.content or ""
    rest = content[len(streamed):] if content.startswith(streamed) else content
    return AIMessageChunk(**_fields(result, reply, rest), chunk_position="last", tool_call_chunks=[
        ToolCallChunk(name=c.name, args=json.dumps(c.arguments), id=c.id, index=i, type="tool_call_chunk")
        for i, c in enumerate(reply.tool_calls)])


def _fields(result: RunResult, reply: ChatReply, content: str) -> dict[str, Any]:
    cost = result.cost
    usage = {"input_tokens": cost.prompt_tokens, "output_tokens": cost.completion_tokens,
             "total_tokens": cost.tokens}
    return {"content": content, "response_metadata": metadata(result, reply), "usage_metadata": usage,
            "additional_kwargs": {"refusal": reply.refusal} if reply.refusal is not None else {},
            "id": f"run-{result.run_id}"}


def metadata(result: RunResult, reply: ChatReply) -> dict[str, Any]:
    """``response_metadata``: the finish reason, the refusal, the run's ``sfdsl`` object and its usage."""
    cost = result.cost
    return {"finish_reason": reply.finish_reason, "refusal": reply.refusal, "score": result.score,
            "abstained": result.abstained, "reason": result.reason, "truncated": result.truncated,
            "usage": {"calls": cost.calls, "prompt_tokens": cost.prompt_tokens,
                      "completion_tokens": cost.completion_tokens},
            "outputs": result.outputs, "run_id": result.run_id, "model_name": result.recipe,
            "model_provider": "sfdsl", "sfdsl": sfdsl_object(result)}
