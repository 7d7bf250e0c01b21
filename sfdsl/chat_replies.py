"""A run result to a chat reply: the one mapping out shared by `sfrun serve`, LangChain and MCP.

``chat_inputs`` is the way in; this module is the way out, so the faces cannot drift:

==================  ==========================  ===================  ===============
run result          content                     refusal              finish_reason
==================  ==========================  ===================  ===============
answer (text)       the answer                  null                 ``stop``
answer (JSON)       the answer as JSON text     null                 ``stop``
tool calls          the text answer, or null    null                 ``tool_calls``
abstention          null                        the reason           ``stop``
no answer           null                        null                 ``stop``
truncated           as above                    null                 ``length``
==================  ==========================  ===================  ===============

Abstention wins over tool calls, and tool calls over truncation. Whatever else
the recipe returned, with its score and cost, goes in the ``sfdsl`` object
(``sfdsl_object``).

Example:
    >>> from sfdsl.runtime.results import RunResult
    >>> reply = chat_reply(RunResult(run_id="r1", recipe="chat", answer="4"))
    >>> (reply.content, reply.finish_reason)
    ('4', 'stop')
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from sfdsl.agent_values import ToolCall
from sfdsl.runtime.results import RunResult

FinishReason = Literal["stop", "length", "tool_calls"]
#: Returned fields that the reply itself carries; the rest go in ``sfdsl.outputs``.
REPLY_FIELDS = frozenset({"answer", "score", "tool_calls"})


@dataclass(frozen=True)
class ChatReply:
    """What every face shows of a run.

    Attributes:
        content: the answer as text (JSON text for a structured answer); None when there is none.
        refusal: why the recipe abstained; None when it did not.
        tool_calls: the tool calls the recipe chose.
        finish_reason: ``stop``, ``length`` (a token limit cut the answer short) or ``tool_calls``.
        structured: the answer when it is a JSON object or list (a schema-constrained answer), else None.
    """

    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    structured: Any = None

    @property
    def text(self) -> str:
        """One text for faces that have only text (MCP, ``/v1/completions``): it says what happened."""
        if self.refusal is not None:
            return f"(declined to answer: {self.refusal})"
        if self.content is not None:
            return self.content
        if self.tool_calls:
            return json.dumps([{"name": c.name, "arguments": c.arguments} for c in self.tool_calls])
        return "(no answer: cut short by its token limit)" if self.finish_reason == "length" else "(no answer)"


def chat_reply(result: RunResult) -> ChatReply:
    """The reply a run gives (see the table in the module docstring)."""
    if result.abstained:
        return ChatReply(content=None, refusal=result.reason or "the recipe abstained")
    answer = result.answer
    structured = answer if isinstance(answer, dict | list) and not result.tool_calls else None
    content = answer_content(answer)
    if result.tool_calls:
        return ChatReply(content=content, tool_calls=list(result.tool_calls), finish_reason="tool_calls")
    return ChatReply(content=content, finish_reason="length" if result.truncated else "stop", structured=structured)


def answer_content(answer: Any) -> str | None:
    """An answer as message text: text as is, JSON values as JSON, None as None."""
    if answer is None:
        return None
    if isinstance(answer, str):
        return answer
    if isinstance(answer, dict | list | bool):
        return json.dumps(answer, ensure_ascii=False, default=str)
    return str(answer)


def openai_message(reply: ChatReply) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` message: ``content``, ``refusal`` and, when there are any, ``tool_calls``."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
    if reply.tool_calls:
        message["tool_calls"] = [call.to_wire().model_dump() for call in reply.tool_calls]
    return message


def usage(result: RunResult) -> dict[str, int]:
    """Tokens of every model call in the run, in OpenAI's ``usage`` shape."""
    cost = result.cost
    return {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
            "total_tokens": cost.prompt_tokens + cost.completion_tokens}


def sfdsl_object(result: RunResult) -> dict[str, Any]:
    """What the chat format has no place for.

    Keys: ``run_id``, ``recipe``, ``score``, ``abstained``, ``reason``, ``truncated``,
    ``outputs`` (every other returned field), ``bound`` (the static worst case),
    ``calls``, ``cached_calls`` and ``wall_s``.
    """
    return {"run_id": result.run_id, "recipe": result.recipe, "score": result.score, "abstained": result.abstained,
            "reason": result.reason, "truncated": result.truncated,
            "outputs": {k: v for k, v in result.outputs.items() if k not in REPLY_FIELDS},
            "bound": result.bound, "calls": result.cost.calls, "cached_calls": result.cost.cached_calls,
            "wall_s": round(result.cost.wall_s, 6)}
