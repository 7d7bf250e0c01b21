"""Render chat messages to prompt text with the model's own (GGUF) chat template.

The template is the Jinja source stored in the GGUF metadata
(``tokenizer.chat_template``), rendered in a sandbox the way Hugging Face
does (``add_generation_prompt``, ``bos_token``, ``eos_token``). A final
assistant message is a prefill: the conversation before it is rendered with
a generation prompt and the assistant text is appended, with no end-of-turn,
so the model continues it. Models without a template get ChatML.

Tool turns: when the template knows tool calls (its source reads ``tool_calls``),
an assistant turn's calls reach it in Hugging Face's shape (``{"type": "function",
"function": {"name", "arguments"}}``, arguments as an object) and a ``tool`` turn
keeps its role, ``tool_call_id`` and ``name``. Otherwise the calls are written as
JSON lines after the assistant's text, and a tool result becomes a user turn
``Tool result (name, id): ...`` unless the template names a ``tool`` role.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sfdsl.errors import BackendError
from sfdsl.log import get_logger
from sfdsl.runtime.backends.base import Message

__all__ = ["CHATML", "ChatTemplate"]

log = get_logger(__name__)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _raise(message: str) -> NoReturn:
    raise jinja2.TemplateError(message)


class ChatTemplate:
    """A compiled chat template plus the special-token strings it may reference."""

    def __init__(self, source: str | None, *, bos_token: str = "", eos_token: str = "") -> None:
        if source is None:
            log.info("chat_template_defaulted", template="chatml")
            source = CHATML
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.knows_tool_calls = "tool_calls" in source
        self.knows_tool_role = "tool" in source
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise BackendError(f"the model's chat template does not compile: {exc}") from exc

    def render(self, messages: Sequence[Message]) -> str:
        """Prompt text for ``messages``; a trailing assistant message is continued, not closed."""
        if not messages:
            raise BackendError("a chat prompt needs at least one message")
        prefill = messages[-1].content if messages[-1].role == "assistant" else None
        turns = messages[:-1] if prefill is not None else messages
        text = self._render(turns, add_generation_prompt=True) if turns else self._bare_assistant()
        if prefill is not None:
            text += prefill
        return text

    def _bare_assistant(self) -> str:
        """The assistant header alone: a one-message prefill renders like an empty conversation."""
        return self._render([], add_generation_prompt=True)

    def _message(self, m: Message) -> dict[str, Any]:
        """One turn as the template reads it (see the module docstring for tool turns)."""
        if self.knows_tool_calls:
            out: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                out["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments}} for c in m.tool_calls]
            if m.role == "tool":
                out.update(tool_call_id=m.tool_call_id, name=m.name)
            return out
        if m.role == "tool" and not self.knows_tool_role:
            who = ", ".join(x for x in (m.name, m.tool_call_id) if x)
            return {"role": "user", "content": f"Tool result{f' ({who})' if who else ''}: {m.content}"}
        return {"role": m.role, "content": m.text_with_calls()}

    def _render(self, turns: Sequence[Message], *, add_generation_prompt: bool) -> str:
        context: dict[str, Any] = {
            "messages": [self._message(m) for m in turns],
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        try:
            return self._template.render(**context)
        except jinja2.TemplateError as exc:
            raise BackendError(f"the model's chat template failed to render: {exc}") from exc
