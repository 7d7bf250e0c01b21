"""A backend that talks to any OpenAI-compatible HTTP server (llama-server, vLLM, OpenAI).

Routing: text prompts go to ``/completions``; chat prompts go to
``/chat/completions`` (or, with ``chat=False``, are rendered as ChatML text and
sent to ``/completions``). A chat prompt that ends with an assistant turn is a
prefill: it is sent as the last message with ``continue_final_message: true``
and ``add_generation_prompt: false`` (vLLM's flags; llama-server continues a
trailing assistant message on its own).

Server differences handled here:

* ``n``: llama-server refuses ``n > 1``, so by default (``supports_n=False``)
  ``n`` samples are ``n`` concurrent requests seeded ``seed + i``, exactly the
  backend contract. With ``supports_n=True`` one request carries ``n`` and the
  server seeds the samples its own way.
* tools and schemas: an ``act`` step's ``tools`` and ``tool_choice`` and a ``generate (schema:)``'s
  ``response_format: {type: json_schema}`` go to ``/chat/completions``; the reply's ``tool_calls`` come back
  on each completion (the runtime validates them). Text prompts get a grammar instead.
* grammars: GBNF is sent as ``grammar`` (llama-server). vLLM reads
  ``guided_grammar``: set ``grammar_field="guided_grammar"`` to send both keys.
* ``finish_reason``: ``length`` stays ``length``; ``stop`` becomes ``stop`` when
  the server says a stop string matched (vLLM's ``stop_reason``) and ``eos``
  when it says it did not; with no such field it is ``stop`` if stop strings
  were given, else ``eos``.
* scoring needs a server that echoes prompt logprobs (``echo: true`` with
  ``logprobs``: vLLM, the sfdsl loopback server; not llama-server). Chat
  prompts are scored as ChatML text (right for SmolLM2 and Qwen-style models;
  pass ``chatml_fallback=False`` to get a ``BackendError`` instead).

Transient failures (429, 5xx, connection errors, a malformed or truncated 200)
are retried with exponential backoff and jitter, honouring ``Retry-After``. Read timeouts raise
``BackendTimeout``; other 4xx raise ``BackendError`` with the server's message,
or ``ContextOverflow`` when a 400 mentions the context.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from sfdsl.errors import BackendError, BackendTimeout, ContextOverflow, InputError
from sfdsl.log import get_logger
from sfdsl.runtime.backends.base import (
    Backend,
    ChoiceRequest,
    Completion,
    GenerateRequest,
    Prompt,
    ScoreRequest,
    SequenceScore,
    normalise_logprobs,
)
from sfdsl.runtime.backends.endpoints import EndpointRouter, parse_base_urls
from sfdsl.runtime.backends.openai_wire import (
    chatml,
    finish_reason,
    first_top_logprobs,
    message_tool_calls,
    response_list,
    retry_after,
    server_message,
    token_logprobs,
    wire_tool_choice,
)

log = get_logger(__name__)

TOP_LOGPROBS = 20  # the most OpenAI and vLLM (by default) return


class OpenAIBackend(Backend):
    """An sfdsl ``Backend`` over an OpenAI-compatible ``/v1`` HTTP API."""

    def __init__(
        self,
        *,
        base_url: str | Sequence[str],
        model: str = "default",
        model_id: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        supports_n: bool = False,
        chat: bool = True,
        grammar_field: str | None = None,
        chatml_fallback: bool = True,
        choice_mode: str = "auto",
        endpoint_cooldown: float = 5.0,
        context_tokens: int | None = None,
    ) -> None:
        """Configure the client; no connection is made until the first request.

        Args:
            base_url: The API root, e.g. ``http://127.0.0.1:8080/v1``; several (a list, or comma-separated)
                spread requests over a fleet (``endpoints.py``: least-loaded routing, failover).
            model: The ``model`` field sent with every request.
            model_id: A stable identity for cache keys; defaults to ``openai:{model}@{base_url}``.
            api_key: Bearer token; defaults to ``$OPENAI_API_KEY`` when set.
            max_concurrency: Most requests in flight at once, per endpoint.
            timeout: Seconds before a request raises ``BackendTimeout``.
            max_retries: Retries after the first try on 429, 5xx and connection errors.
            backoff: First retry delay in seconds; doubles per retry, with jitter.
            supports_n: Send ``n`` in one request instead of ``n`` seeded requests.
            chat: Send chat prompts to ``/chat/completions`` (else ChatML text to ``/completions``).
            grammar_field: Extra body key that also carries the GBNF grammar (vLLM: ``guided_grammar``).
            chatml_fallback: Score chat prompts as ChatML text; if False, raise ``BackendError``.
            choice_mode: ``auto`` answers single-token choices from top logprobs; ``score`` always scores.
            endpoint_cooldown: Seconds an unreachable endpoint rests before it is probed again.
            context_tokens: The model's context size; longer prompts fail before any request.
        """
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise InputError("max_concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        if choice_mode not in ("auto", "score"):
            raise InputError(f"choice_mode must be 'auto' or 'score', not {choice_mode!r}")
        self._endpoints = EndpointRouter(parse_base_urls(base_url), cooldown=endpoint_cooldown)
        self.base_url = self._endpoints.label
        self.model = model
        self.model_id = model_id or f"openai:{model}@{self.base_url}"
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._max_concurrency = max_concurrency
        self._timeout = timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._supports_n = supports_n
        self._chat = chat
        self.native_tools = chat  # tools, tool_choice and tool_calls travel on /chat/completions
        self.native_json_schema = chat  # response_format json_schema, likewise
        self._grammar_field = grammar_field
        self._chatml_fallback = chatml_fallback
        self._choice_mode = choice_mode
        self.context_tokens = context_tokens
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._random = random.Random()

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OpenAIBackend:
        """Build a backend from a params dict (e.g. a recipe's ``model`` block).

        Args:
            params: Keyword arguments of ``__init__``; ``base_url`` is required.

        Raises:
            InputError: A key is unknown or ``base_url`` is missing.
        """
        known = {name for name in inspect.signature(cls.__init__).parameters if name != "self"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InputError(f"unknown OpenAI backend params: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if not params.get("base_url"):
            raise InputError("the OpenAI backend needs base_url, e.g. http://127.0.0.1:8080/v1")
        return cls(**dict(params))

    # -- Backend API ---------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        """Return ``request.n`` completions in sample order."""
        if request.n == 1 or self._supports_n:
            return await self._generate_once(request, n=request.n, seed=request.seed)
        parts = await asyncio.gather(
            *(
                self._generate_once(request, n=1, seed=None if request.seed is None else request.seed + i)
                for i in range(request.n)
            )
        )
        return [c.model_copy(update={"index": i}) for i, (c,) in enumerate(parts)]

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        """Score each continuation with one echo request, all concurrently."""
        prefix = self._score_text(request.prompt)
        return list(await asyncio.gather(*(self._score_one(prefix, c) for c in request.continuations)))

    async def choice_probs(self, request: ChoiceRequest) -> list[float]:
        """Answer from one top-logprobs request when the choices look like single tokens.

        A choice counts as found when a top token's text equals it exactly. When
        every choice is found, or some are and all are short words, missing ones
        get a logprob well below the top ``TOP_LOGPROBS``; otherwise this falls
        back to scoring every choice.
        """
        if self._choice_mode == "auto" and request.choices:
            top = await self._top_logprobs(self._score_text(request.prompt))
            found = [top.get(c) for c in request.choices]
            wordlike = all(_looks_single_token(c) for c in request.choices)
            if top and (all(lp is not None for lp in found) or (wordlike and any(lp is not None for lp in found))):
                floor = min(top.values()) - 5.0
                return normalise_logprobs([floor if lp is None else lp for lp in found])
        return await super().choice_probs(request)

    async def aclose(self) -> None:
        """Close the HTTP connection pool; a later call opens a new one (e.g. in a new event loop)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- requests ------------------------------------------------------------

    def _body(self, request: GenerateRequest, *, n: int, seed: int | None, chat: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if n > 1:
            body["n"] = n
        if request.top_k:
            body["top_k"] = request.top_k
        if request.stop:
            body["stop"] = list(request.stop)
        if seed is not None:
            body["seed"] = seed
        if request.grammar is not None:
            body["grammar"] = request.grammar
            if self._grammar_field:
                body[self._grammar_field] = request.grammar
        if request.logprobs:
            body["logprobs"] = True if chat else 1
        if chat and request.tools:
            body["tools"] = [tool.model_dump(exclude_none=True) for tool in request.tools]
            body["tool_choice"] = wire_tool_choice(request.tool_choice or "auto")
        if chat and request.json_schema is not None:
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": request.json_schema}}
        return body

    async def _generate_once(self, request: GenerateRequest, *, n: int, seed: int | None) -> list[Completion]:
        prompt = request.prompt
        chat = prompt.is_chat and self._chat
        body = self._body(request, n=n, seed=seed, chat=chat)
        if chat:
            body["messages"] = [m.to_wire() for m in prompt.messages or ()]
            if prompt.has_prefill:
                body.update(continue_final_message=True, add_generation_prompt=False)
            data = await self._post("/chat/completions", body)
        else:
            body["prompt"] = chatml(prompt) if prompt.is_chat else prompt.text or ""
            data = await self._post("/completions", body)
        choices = sorted(response_list(data, "choices"), key=lambda c: int(c.get("index", 0)))
        if len(choices) != n:
            raise BackendError(f"{self.base_url} returned {len(choices)} choices for n={n}")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        total = int(usage.get("completion_tokens") or 0)
        out = []
        for i, choice in enumerate(choices):
            text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
            calls = message_tool_calls(choice.get("message")) if chat else ()
            tokens = token_logprobs(choice.get("logprobs"))
            count = len(tokens) if tokens is not None else total // n + (1 if i < total % n else 0)
            out.append(
                Completion(
                    text=text or "",
                    completion_tokens=count,
                    prompt_tokens=prompt_tokens,
                    finish_reason=finish_reason(choice, request.stop),
                    logprobs=[lp for _, lp, _ in tokens] if request.logprobs and tokens is not None else None,
                    index=i,
                    requests=int(i == 0),  # one request carried every choice
                    response_model=data.get("model") if isinstance(data.get("model"), str) else None,
                    response_id=data.get("id") if isinstance(data.get("id"), str) else None,
                    tool_calls=calls,
                )
            )
        return out

    def _score_text(self, prompt: Prompt) -> str:
        if not prompt.is_chat:
            return prompt.text or ""
        if not self._chatml_fallback:
            raise BackendError("scoring needs a text prompt on an OpenAI-compatible server (chatml_fallback=False)")
        return chatml(prompt)

    async def _score_one(self, prefix: str, continuation: str) -> SequenceScore:
        body = {
            "model": self.model,
            "prompt": prefix + continuation,
            "echo": True,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": 1,
        }
        choices = response_list(await self._post("/completions", body), "choices")
        echoed = bool(choices) and str(choices[0].get("text") or "").startswith(prefix + continuation)
        tokens = token_logprobs(choices[0].get("logprobs")) if echoed else None
        if not tokens:
            raise BackendError(f"{self.base_url} did not echo prompt logprobs; scoring needs echo support (e.g. vLLM)")
        boundary, end = len(prefix), len(prefix) + len(continuation)
        # A token belongs to the continuation when any of its text does; one that
        # straddles the boundary is shared by every continuation of the prompt.
        picked = [lp for tok, lp, off in tokens if off < end and off + len(tok) > boundary]
        prompt_tokens = sum(1 for tok, _, off in tokens if off + len(tok) <= boundary)
        return SequenceScore(
            token_logprobs=[-math.inf if lp is None else lp for lp in picked], prompt_tokens=prompt_tokens
        )

    async def _top_logprobs(self, prefix: str) -> dict[str, float]:
        body = {"model": self.model, "prompt": prefix, "max_tokens": 1, "temperature": 0.0, "logprobs": TOP_LOGPROBS}
        choices = response_list(await self._post("/completions", body), "choices")
        return first_top_logprobs(choices[0].get("logprobs") if choices else None)

    # -- transport -----------------------------------------------------------

    def _http(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._semaphore is None or self._loop is not loop:
            # A client is bound to the loop it first ran on; a new asyncio.run() needs a new one.
            self._loop = loop
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            most = self._max_concurrency * len(self._endpoints)
            limits = httpx.Limits(max_connections=most)
            self._client = httpx.AsyncClient(headers=headers, timeout=self._timeout, limits=limits)
            self._semaphore = asyncio.Semaphore(most)
        return self._client, self._semaphore

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        client, semaphore = self._http()
        url = self.base_url + path
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            start = time.perf_counter()
            try:
                async with semaphore:
                    response = await self._endpoints.post(client, path, json=body)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
                raise BackendTimeout(f"{url} did not answer within {self._timeout}s") from exc
            except httpx.TransportError as exc:  # connection refused/reset, connect timeout
                if last:
                    cls = BackendTimeout if isinstance(exc, httpx.TimeoutException) else BackendError
                    raise cls(f"cannot reach {url} after {attempt + 1} tries: {exc!r}") from exc
                await self._retry(url, attempt, reason=type(exc).__name__, retry_after=None)
                continue
            elapsed_ms, url = round((time.perf_counter() - start) * 1000, 1), str(response.url)
            log.debug("backend_called", url=url, status=response.status_code, attempt=attempt, elapsed_ms=elapsed_ms)
            status = response.status_code
            if (status == 429 or status >= 500) and not last:
                await self._retry(url, attempt, reason=f"http_{status}", retry_after=retry_after(response))
                continue
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                message = f"{url} answered {status}: {server_message(response)}"
                if status == 400 and "context" in message.lower():
                    raise ContextOverflow(message) from exc
                raise BackendError(message) from exc
            try:
                data = response.json()
            except ValueError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("choices"), list):
                return data
            problem = f"invalid JSON: {response.text[:200]!r}" if data is None else f"no choices: {str(data)[:200]}"
            if last:  # a malformed or truncated 200 is transient, like a 5xx
                raise BackendError(f"{url} answered {status} with {problem}")
            await self._retry(url, attempt, reason="malformed_body", retry_after=None)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _retry(self, url: str, attempt: int, *, reason: str, retry_after: float | None) -> None:
        delay = self._backoff * 2**attempt * (0.5 + self._random.random())
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, 60.0)
        log.info("backend_retried", url=url, attempt=attempt + 1, reason=reason, delay_s=round(delay, 3))
        await asyncio.sleep(delay)


def _looks_single_token(choice: str) -> bool:
    word = choice[1:] if choice.startswith(" ") else choice
    return 0 < len(word) <= 12 and not any(ch.isspace() for ch in word)


__all__ = ["OpenAIBackend", "chatml"]
