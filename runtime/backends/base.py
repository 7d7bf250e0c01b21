"""The backend contract: the tiny async boundary between the runtime and a model.

A backend answers three kinds of request, all async and all safe to call
concurrently from many tasks:

* ``generate(GenerateRequest) -> list[Completion]``: ``n`` samples of one
  prompt in one request, so a backend can decode the prompt once and share it.
  Sample ``i`` is seeded with ``seed + i`` when ``seed`` is set.
* ``score(ScoreRequest) -> list[SequenceScore]``: the log-probabilities of
  several given continuations of one prompt (one batch where possible).
* ``generate_stream(GenerateRequest, sink) -> list[Completion]``: ``generate``,
  with sample 0's text also handed to ``sink`` in pieces as it decodes (their
  concatenation is that sample's final text). The default sends the whole text
  once it is known; backends that decode token by token override it.
* ``choice_probs(ChoiceRequest) -> list[float]``: the probability of each of a
  set of choices as the continuation of a prompt, renormalised over the set.
  The default implementation derives it from ``score``; backends may answer
  single-token choices from one next-token distribution instead.

Tools and schemas: a request may carry ``tools``/``tool_choice`` (an ``act``
step) or ``json_schema`` (``generate (schema:)``). A backend that declares
``native_tools`` / ``native_json_schema`` sends them to its model and returns
the calls in ``Completion.tool_calls``; for any other backend the runtime has
already described the tools in the prompt and put a grammar in ``grammar``,
so it may ignore them. Chat turns may be ``tool`` turns and assistant turns
with ``tool_calls`` (a spliced conversation).

Backends translate their own low-level failures into ``sfdsl.errors``
(``BackendError``, ``BackendTimeout``, ``ContextOverflow``) with
``raise ... from exc``. Nothing else crosses this boundary.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfdsl.agent_values import MessageToolCall, ToolCall, ToolSpec
from sfdsl.errors import ContextOverflow

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "eos"]


class Message(BaseModel):
    """One chat turn: an assistant turn may carry tool calls; a ``tool`` turn answers the call ``tool_call_id``."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def header(self) -> str:
        """The role, with the tool turn's name and call id when it has them (``tool name=add id=call_1``)."""
        extra = "".join(f" {k}={v}" for k, v in (("name", self.name), ("id", self.tool_call_id)) if v)
        return self.role + extra

    def text_with_calls(self) -> str:
        """The content followed by one JSON line per tool call: how a template without tool support shows them."""
        calls = [json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False) for c in self.tool_calls]
        return "\n".join([self.content, *calls] if self.content else calls)

    def to_wire(self) -> dict[str, Any]:
        """The turn as an OpenAI chat message."""
        wire: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            wire["tool_calls"] = [c.to_wire().model_dump() for c in self.tool_calls]
            wire["content"] = self.content or None
        if self.tool_call_id is not None:
            wire["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            wire["name"] = self.name
        return wire


class Prompt(BaseModel):
    """A rendered prompt: plain completion text, or chat messages.

    When ``messages`` ends with an assistant turn, that turn is a prefill:
    the model continues it rather than starting a new turn.
    """

    model_config = ConfigDict(frozen=True)

    text: str | None = None
    messages: tuple[Message, ...] | None = None

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    @property
    def has_prefill(self) -> bool:
        return bool(self.messages) and self.messages[-1].role == "assistant"  # type: ignore[index]

    def canonical(self) -> str:
        """A stable plain-text form, used by the scripted backend and cache keys."""
        if self.messages is None:
            return self.text or ""
        return "\n".join(f"<{m.header()}>{m.content}" + "".join(f"\n<call id={c.id}>{c.key}" for c in m.tool_calls)
                         for m in self.messages)

    def extended(self, suffix: str) -> Prompt:
        """This prompt with ``suffix`` appended to the text or to the last turn.

        Used to continue a generation (e.g. iterative deepening): for chat
        prompts the suffix extends the assistant prefill, adding one if needed.
        """
        if self.messages is None:
            return Prompt(text=(self.text or "") + suffix)
        msgs = list(self.messages)
        if msgs and msgs[-1].role == "assistant":
            msgs[-1] = msgs[-1].model_copy(update={"content": msgs[-1].content + suffix})
        else:
            msgs.append(Message(role="assistant", content=suffix))
        return Prompt(messages=tuple(msgs))


class GenerateRequest(BaseModel):
    """Ask for ``n`` samples of one prompt."""

    model_config = ConfigDict(frozen=True)

    prompt: Prompt
    n: int = Field(default=1, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0)
    max_tokens: int = Field(default=256, ge=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    grammar: str | None = None  # GBNF; choices and regex are compiled to GBNF
    logprobs: bool = False
    tools: tuple[ToolSpec, ...] = ()  # sent to backends with native tool calling (``native_tools``)
    tool_choice: str | None = None  # "auto", "required", "none" or a tool's name
    json_schema: dict[str, Any] | None = None  # sent to backends with native structured output


class Completion(BaseModel):
    """One sample: its text, token counts, why it ended, and optional logprobs."""

    text: str
    completion_tokens: int
    prompt_tokens: int = 0
    finish_reason: FinishReason = "stop"
    logprobs: list[float] | None = None  # one per generated token, natural log
    index: int = 0
    cached: bool = False
    cached_prompt_tokens: int = 0  # prompt tokens whose KV the backend reused instead of decoding
    requests: int | None = None  # requests sent for this sample, when the backend counts them (else one per call)
    response_model: str | None = None  # the model a remote server says answered (OpenAI's `model`)
    response_id: str | None = None  # the remote server's id of the response (OpenAI's `id`)
    tool_calls: tuple[MessageToolCall, ...] = ()  # calls a native-tools backend returned, arguments as JSON text

    @property
    def logprob(self) -> float | None:
        """Total log-probability of the generated tokens, when requested."""
        return None if self.logprobs is None else float(sum(self.logprobs))


class ScoreRequest(BaseModel):
    """Ask for the log-probabilities of continuations of one prompt."""

    model_config = ConfigDict(frozen=True)

    prompt: Prompt
    continuations: tuple[str, ...]


class SequenceScore(BaseModel):
    """Log-probabilities of one continuation's tokens given the prompt."""

    token_logprobs: list[float]
    prompt_tokens: int = 0
    cached: bool = False

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, self.n_tokens)


class ChoiceRequest(BaseModel):
    """Ask for the probability of each choice as the continuation of a prompt."""

    model_config = ConfigDict(frozen=True)

    prompt: Prompt
    choices: tuple[str, ...]


class Backend(ABC):
    """A model behind the runtime. Subclasses implement ``generate`` and ``score``."""

    #: A stable identifier of the model (e.g. file hash); part of cache keys.
    model_id: str = "unknown"
    #: The most tokens one sequence (prompt and generation) may hold; None when unknown.
    context_tokens: int | None = None
    #: Whether the backend sends ``tools``/``tool_choice`` and returns ``tool_calls`` itself; otherwise the
    #: runtime describes the tools in the prompt and constrains the reply with a grammar.
    native_tools: bool = False
    #: Whether the backend sends ``json_schema`` as a structured-output format itself; otherwise the runtime
    #: constrains the reply with a grammar built from the schema.
    native_json_schema: bool = False

    @abstractmethod
    async def generate(self, request: GenerateRequest) -> list[Completion]:
        """Return ``request.n`` completions, in sample order."""

    @abstractmethod
    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        """Return one score per continuation, in order."""

    async def generate_stream(self, request: GenerateRequest, sink: Callable[[str], None]) -> list[Completion]:
        """``generate``, handing sample 0's text to ``sink`` in pieces (here: whole, at the end)."""
        completions = await self.generate(request)
        if completions and completions[0].text:
            sink(completions[0].text)
        return completions

    async def choice_probs(self, request: ChoiceRequest) -> list[float]:
        """Probability of each choice, renormalised over the choices."""
        scores = await self.score(ScoreRequest(prompt=request.prompt, continuations=request.choices))
        return normalise_logprobs([s.logprob for s in scores])

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources (threads, contexts, connections)."""


#: No tokenizer's token covers more characters than this, so a longer prompt cannot fit.
MAX_CHARS_PER_TOKEN = 32


def ensure_fits(backend: Backend, prompt: Prompt, what: str) -> None:
    """Refuse, before any model call, a prompt too long for the backend's context.

    A cheap character bound: exact token counts are the backend's business.

    Raises:
        ContextOverflow: naming the prompt's size and the context.
    """
    limit = backend.context_tokens
    if limit is None:
        return
    chars = len(prompt.canonical())
    if chars > limit * MAX_CHARS_PER_TOKEN:
        raise ContextOverflow(
            f"{what}: the prompt has {chars} characters, more than a context of {limit} tokens can hold "
            f"(at most {MAX_CHARS_PER_TOKEN} characters a token); shorten the prompt or its inputs"
        )


def normalise_logprobs(logprobs: list[float]) -> list[float]:
    """Softmax over log-probabilities, stable against underflow.

    >>> [round(p, 2) for p in normalise_logprobs([math.log(0.2), math.log(0.6)])]
    [0.25, 0.75]
    """
    finite = [lp for lp in logprobs if math.isfinite(lp)]
    if not finite:
        return [1.0 / len(logprobs)] * len(logprobs)
    top = max(finite)
    weights = [math.exp(lp - top) if math.isfinite(lp) else 0.0 for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]
