"""A deterministic backend that replays a script: for tests, dry runs and docs.

The script is one of:

* a list of replies, consumed in order, one per sample;
* a dict keyed by prompt text (exact match first, else the longest key that
  occurs in the prompt); a value that is a list is consumed in order;
* a callable ``f(prompt_text, sample_index) -> str``, sync or async.

Scores come from ``scores``: a dict keyed by continuation, or a callable
``f(prompt_text, continuation) -> logprob``. When the script has no answer
for a request the backend raises ``ScriptExhausted``; it never invents text.

Tokens are whitespace-separated words, so ``max_tokens`` truncates by words.

Example:
    >>> backend = ScriptedBackend(["The answer is 4", "The answer is 5"])
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from sfdsl.errors import ScriptExhausted
from sfdsl.runtime.backends.base import (
    Backend,
    Completion,
    GenerateRequest,
    Prompt,
    ScoreRequest,
    SequenceScore,
)

ReplyFn = Callable[[str, int], str | Awaitable[str]]
Script = Sequence[str] | Mapping[str, str | Sequence[str]] | ReplyFn
ScoreFn = Callable[[str, str], float]
Scores = Mapping[str, float] | ScoreFn


class ScriptedBackend(Backend):
    """Replays scripted replies and scores; records every request it sees in ``requests`` (when ``record``).

    Backends made from script files (``--backend scripted:FILE``, ``scripted(file: ...)``) do not
    record, so a long-running server on one keeps a flat memory.
    """

    def __init__(self, script: Script, *, scores: Scores | None = None, latency: float = 0.0,
                 context_tokens: int | None = None, record: bool = True) -> None:
        self._script = script
        self.context_tokens = context_tokens
        self._queue = list(script) if isinstance(script, Sequence) and not isinstance(script, str) else None
        self._by_prompt = (
            {k: list(v) if not isinstance(v, str) else v for k, v in script.items()}
            if isinstance(script, Mapping)
            else None
        )
        self._scores = scores
        self._latency = latency
        self.model_id = "scripted"
        self.requests: list[GenerateRequest | ScoreRequest] = []
        self._record = record
        self.in_flight = 0
        self.max_in_flight = 0

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        if self._record:
            self.requests.append(request)
        text = request.prompt.canonical()
        async with self._track():
            replies = [await self._reply(text, i) for i in range(request.n)]
        return [self._complete(reply, request, i) for i, reply in enumerate(replies)]

    async def generate_stream(self, request: GenerateRequest, sink: Callable[[str], None]) -> list[Completion]:
        """``generate``, handing sample 0's text to ``sink`` word by word (a "token" here), yielding between."""
        completions = await self.generate(request)
        for piece in re.findall(r"\s*\S+|\s+$", completions[0].text if completions else ""):
            sink(piece)
            await asyncio.sleep(0)
        return completions

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        if self._record:
            self.requests.append(request)
        text = request.prompt.canonical()
        async with self._track():
            return [SequenceScore(token_logprobs=self._token_logprobs(text, c)) for c in request.continuations]

    def _track(self) -> _InFlight:
        return _InFlight(self)

    async def _reply(self, prompt_text: str, index: int) -> str:
        if self._queue is not None:
            if not self._queue:
                raise ScriptExhausted(f"scripted backend has no reply left for prompt: {_clip(prompt_text)!r}")
            return self._queue.pop(0)
        if self._by_prompt is not None:
            return self._reply_by_prompt(prompt_text)
        result = self._script(prompt_text, index)  # type: ignore[operator]
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str):
            raise ScriptExhausted(f"scripted reply function returned {type(result).__name__}, not str")
        return result

    def _reply_by_prompt(self, prompt_text: str) -> str:
        assert self._by_prompt is not None
        key = prompt_text if prompt_text in self._by_prompt else None
        if key is None:
            matches = [k for k in self._by_prompt if k in prompt_text]
            key = max(matches, key=len) if matches else None
        if key is None:
            raise ScriptExhausted(f"scripted backend has no reply for prompt: {_clip(prompt_text)!r}")
        value = self._by_prompt[key]
        if isinstance(value, str):
            return value
        if not value:
            raise ScriptExhausted(f"scripted replies for {_clip(key)!r} are used up")
        return value.pop(0)

    def _token_logprobs(self, prompt_text: str, continuation: str) -> list[float]:
        if self._scores is None:
            raise ScriptExhausted("scripted backend was given no scores; pass scores= to score text")
        if callable(self._scores):
            total = float(self._scores(prompt_text, continuation))
        elif continuation in self._scores:
            total = float(self._scores[continuation])
        else:
            raise ScriptExhausted(f"scripted backend has no score for continuation {continuation!r}")
        n = max(1, len(continuation.split()))
        return [total / n] * n

    def _complete(self, reply: str, request: GenerateRequest, index: int) -> Completion:
        text, finish = reply, "eos"
        cut = [text.find(s) for s in request.stop if s and s in text]
        if cut:
            text, finish = text[: min(cut)], "stop"
        words = text.split(" ")
        if len([w for w in words if w]) > request.max_tokens:
            kept: list[str] = []
            count = 0
            for word in words:
                if word:
                    if count == request.max_tokens:
                        break
                    count += 1
                kept.append(word)
            text, finish = " ".join(kept), "length"
        n_tokens = max(1, len(text.split())) if text else 0
        logprobs = None
        if request.logprobs:
            logprobs = self._token_logprobs(request.prompt.canonical(), text)[:n_tokens] if n_tokens else []
        return Completion(
            text=text,
            completion_tokens=n_tokens,
            prompt_tokens=len(request.prompt.canonical().split()),
            finish_reason=finish,  # type: ignore[arg-type]
            logprobs=logprobs,
            index=index,
        )


class _InFlight:
    """Counts concurrent requests and applies the scripted latency."""

    def __init__(self, backend: ScriptedBackend) -> None:
        self._backend = backend

    async def __aenter__(self) -> None:
        b = self._backend
        b.in_flight += 1
        b.max_in_flight = max(b.max_in_flight, b.in_flight)
        if b._latency:
            await asyncio.sleep(b._latency)

    async def __aexit__(self, *exc: object) -> None:
        self._backend.in_flight -= 1


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["Prompt", "Scores", "Script", "ScriptedBackend"]
