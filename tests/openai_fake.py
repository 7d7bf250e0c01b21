"""Test fake: a small OpenAI-compatible HTTP server in front of any sfdsl Backend (loopback by default).

It serves ``GET /v1/models``, ``POST /v1/completions`` (with ``n``, ``stop``,
``seed``, ``logprobs``, ``echo`` for scoring) and ``POST /v1/chat/completions``
(a trailing assistant message is continued, as llama-server does; given ``tools``, a reply that is a JSON
``{"name", "arguments"}`` is answered as a ``tool_calls`` message). HTTP runs
on a ``ThreadingHTTPServer``; the backend runs on one asyncio event loop in its
own thread, so concurrent HTTP requests become concurrent backend calls.

sfdsl backends expose no tokenizer or vocabulary, so this server approximates:

* tokens are space-led words (``" word"``) and newlines, close to ``ScriptedBackend``;
* echoed prompt logprobs cost one ``backend.score`` call per prompt token;
* ``top_logprobs`` of the first generated token are taken over the fixed
  ``candidates`` given to the server (each scored as a continuation), plus the
  sampled token itself.

For tests it records every request (``requests``), counts concurrent backend
calls (``max_in_flight``) and can be told to fail or stall the next requests
(``inject_fault``).

Example:
    >>> with OpenAIServer(ScriptedBackend(["hi"])) as server:  # doctest: +SKIP
    ...     OpenAIBackend(base_url=server.base_url)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from pydantic import ValidationError

from sfdsl.agent_values import ToolCall
from sfdsl.errors import BackendError, BackendTimeout, ContextOverflow
from sfdsl.log import get_logger
from sfdsl.runtime.backends.base import Backend, Completion, GenerateRequest, Message, Prompt, ScoreRequest

log = get_logger(__name__)

T = TypeVar("T")
_TOKEN = re.compile(r"\n|[^\S\n]*\S+(?:[^\S\n]+$)?|[^\S\n]+")
TokenLogprob = tuple[str, float | None, dict[str, float] | None]  # token, logprob, top alternatives
_FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


@dataclass(frozen=True)
class Fault:
    """What to do to one incoming request: stall it, then fail it with ``status`` (if set)."""

    status: int | None = 500
    message: str = "injected fault"
    retry_after: float | None = None
    delay: float = 0.0


class _BadRequestError(Exception):
    """A request the server cannot parse; answered with 400."""


def tokenize(text: str) -> list[str]:
    """Split text into space-led words and newlines that concatenate back to it.

    >>> tokenize("Q: why?\\n A: yes ")
    ['Q:', ' why?', '\\n', ' A:', ' yes ']
    """
    return _TOKEN.findall(text)


class OpenAIServer:
    """Serves a Backend over the OpenAI HTTP API on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str | None = None,
        candidates: Sequence[str] = (),
    ) -> None:
        """Create the server; call ``start()`` or use it as a context manager.

        Args:
            backend: Any sfdsl backend; the caller keeps ownership of it.
            host: Interface to bind; keep the loopback default unless you mean it.
            port: TCP port; 0 asks the OS for a free one.
            model_name: The id listed by ``/v1/models``; defaults to ``backend.model_id``.
            candidates: Tokens ranked for ``top_logprobs`` (see module docstring).
        """
        self.backend = backend
        self.model_name = model_name or backend.model_id
        self.candidates = tuple(candidates)
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._host = host
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        self._loop = asyncio.new_event_loop()
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The API root to hand to a client, e.g. ``http://127.0.0.1:43123/v1``."""
        return f"http://{self._host}:{self.port}/v1"

    def start(self) -> OpenAIServer:
        """Start the event-loop thread and the HTTP thread; return self."""
        self._threads = [
            threading.Thread(target=self._loop.run_forever, name="sfdsl-server-loop", daemon=True),
            threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="sfdsl-server-http", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("server_started", base_url=self.base_url, model=self.model_name)
        return self

    def close(self) -> None:
        """Stop serving, cancel backend calls still running, and stop the loop."""
        self._closing.set()  # ends injected stalls
        if self._threads:
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(timeout=10)
        self._loop.close()
        log.info("server_stopped", base_url=self.base_url)

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the backend's loop from any thread (e.g. ``backend.aclose()``)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def inject_fault(
        self,
        *,
        status: int | None = 500,
        count: int = 1,
        message: str = "injected fault",
        retry_after: float | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``count`` POST requests stall ``delay`` s, then fail with ``status``.

        Args:
            status: HTTP status to answer with; None serves the request normally after the delay.
            count: How many upcoming requests are affected.
            message: The error message in the JSON body.
            retry_after: Seconds to put in a ``Retry-After`` header.
            delay: Seconds to stall before answering.
        """
        with self._lock:
            self._faults.extend([Fault(status, message, retry_after, delay)] * count)

    # -- dispatch (HTTP threads) --------------------------------------------

    def handle(
        self, method: str, path: str, raw: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one HTTP request: (status, JSON body, extra headers)."""
        path = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "sfdsl"}
            return 200, {"object": "list", "data": [model]}, {}
        routes = {"/v1/completions": self._completions, "/v1/chat/completions": self._chat}
        if method != "POST" or path not in routes:
            return 404, _error(f"no route for {method} {path}", "not_found_error"), {}
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise _BadRequestError("the request body must be a JSON object")
        except ValueError:
            return 400, _error("the request body is not valid JSON"), {}
        with self._lock:
            self.requests.append(
                {"path": path, "body": body, "headers": {k.lower(): v for k, v in (headers or {}).items()}}
            )
            fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            self._closing.wait(fault.delay)
            if fault.status is not None:
                extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
                return fault.status, _error(fault.message, "server_error"), extra
        if self._loop.is_closed():
            return 503, _error("the server is shutting down", "server_error"), {}
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return 200, self.run(routes[path](body)), {}
        except (_BadRequestError, ValidationError, TypeError, ValueError) as exc:
            return 400, _error(str(exc)), {}
        except ContextOverflow as exc:
            return 400, _error(f"context length exceeded: {exc}", code="context_length_exceeded"), {}
        except BackendTimeout as exc:
            return 504, _error(str(exc), "timeout_error"), {}
        except (BackendError, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            return 500, _error(str(exc) or type(exc).__name__, "server_error"), {}
        except Exception as exc:  # a bug in the backend: answer 500 rather than drop the connection
            log.warning("server_backend_failed", error=repr(exc))
            return 500, _error(f"backend failed: {exc!r}", "server_error"), {}
        finally:
            with self._lock:
                self.in_flight -= 1

    # -- endpoints (event-loop thread) --------------------------------------

    async def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise _BadRequestError("prompt must be a string (token-id and batched prompts are not supported)")
        k = body.get("logprobs")
        k = None if k is None or k is False else int(k)
        echo = bool(body.get("echo"))
        completions = await self._generate(body, Prompt(text=prompt), logprobs=k is not None)
        echoed = await self._prompt_logprobs(prompt) if echo and k is not None else []
        top = await self._top_logprobs(Prompt(text=prompt), k or 0)
        choices = []
        for c in completions:
            text = (prompt if echo else "") + c.text
            choice: dict[str, Any] = {"index": c.index, "text": text, "logprobs": None}
            if k is not None:
                tokens = echoed + _token_logprobs(c, top)
                offset, offsets = (0 if echo else len(prompt)), []
                for tok, _, _ in tokens:
                    offsets.append(offset)
                    offset += len(tok)
                choice["logprobs"] = {
                    "tokens": [t for t, _, _ in tokens],
                    "token_logprobs": [lp for _, lp, _ in tokens],
                    "top_logprobs": [alts for _, _, alts in tokens],
                    "text_offset": offsets,
                }
            choices.append({**choice, **_finish(c, body)})
        return _envelope("text_completion", self.model_name, choices, completions)

    async def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequestError("messages must be a non-empty list")
        prompt = Prompt(messages=tuple(_message(m) for m in messages))
        tools = body.get("tools") or []
        want = bool(body.get("logprobs"))
        completions = await self._generate(body, prompt, logprobs=want)
        top = await self._top_logprobs(prompt, int(body.get("top_logprobs") or 0)) if want else {}
        choices = []
        for c in completions:
            logprobs = None
            if want:
                content = []
                for tok, lp, alts in _token_logprobs(c, top):
                    ranked = sorted((alts or {}).items(), key=lambda kv: -kv[1])[: int(body.get("top_logprobs") or 0)]
                    alternatives = [{"token": t, "logprob": v} for t, v in ranked]
                    content.append(
                        {"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": alternatives}
                    )
                logprobs = {"content": content}
            message: dict[str, Any] = {"role": "assistant", "content": c.text}
            finish = _finish(c, body)
            call = _as_tool_call(c.text, c.index) if tools and body.get("tool_choice") != "none" else None
            if call is not None:
                message = {"role": "assistant", "content": None, "tool_calls": [call]}
                finish["finish_reason"] = "tool_calls"
            choices.append({"index": c.index, "message": message, "logprobs": logprobs, **finish})
        return _envelope("chat.completion", self.model_name, choices, completions)

    async def _generate(self, body: dict[str, Any], prompt: Prompt, *, logprobs: bool) -> list[Completion]:
        max_tokens = next((body[k] for k in ("max_tokens", "max_completion_tokens") if body.get(k) is not None), 256)
        n = int(body.get("n") or 1)
        if max_tokens == 0:  # echo-only scoring request: nothing to generate
            return [Completion(text="", completion_tokens=0, finish_reason="length", index=i) for i in range(n)]
        stop = body.get("stop") or ()
        request = GenerateRequest(
            prompt=prompt,
            n=n,
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            top_k=max(0, int(body.get("top_k") or 0)),
            max_tokens=max_tokens,
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            seed=body.get("seed"),
            grammar=body.get("grammar") or body.get("guided_grammar"),
            logprobs=logprobs,
        )
        completions = await self.backend.generate(request)
        return [c.model_copy(update={"index": i}) for i, c in enumerate(completions)]

    async def _prompt_logprobs(self, text: str) -> list[TokenLogprob]:
        """Each prompt token's logprob given the text before it (the first has none)."""
        tokens = tokenize(text)
        offsets = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
        scores = await asyncio.gather(
            *(
                self.backend.score(ScoreRequest(prompt=Prompt(text=text[:o]), continuations=(t,)))
                for t, o in zip(tokens[1:], offsets[1:], strict=True)
            )
        )
        logprobs = [None] + [s[0].logprob for s in scores]
        return [(t, lp, None if lp is None else {t: lp}) for t, lp in zip(tokens, logprobs, strict=True)]

    async def _top_logprobs(self, prompt: Prompt, k: int) -> dict[str, float]:
        """The ``k`` best of ``candidates`` as the next token after ``prompt``."""
        if k <= 0 or not self.candidates:
            return {}
        scores = await self.backend.score(ScoreRequest(prompt=prompt, continuations=self.candidates))
        ranked = sorted(zip(self.candidates, (s.logprob for s in scores), strict=True), key=lambda kv: -kv[1])
        return dict(ranked[:k])


# -- helpers ------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("server_request_failed", client=str(client_address), error=repr(sys.exc_info()[1]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload, headers = self.server.app.handle(method, self.path, raw, dict(self.headers))
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("server_request_served", line=format % args)


def _token_logprobs(completion: Completion, top: dict[str, float]) -> list[TokenLogprob]:
    """Word tokens of a completion with logprobs (None if the backend gave none); the first carries ``top``."""
    tokens = tokenize(completion.text)
    lps: list[float | None] = list(completion.logprobs or [])
    if completion.logprobs is None:
        lps = [None] * len(tokens)
    elif len(lps) != len(tokens):  # backend tokens differ from words: spread the total
        lps = [sum(completion.logprobs) / len(tokens)] * len(tokens) if tokens else []
    out = [(t, lp, None if lp is None else {t: lp}) for t, lp in zip(tokens, lps, strict=True)]
    if out:
        tok, lp, _ = out[0]
        out[0] = (tok, lp, top if lp is None else {**top, tok: lp})
    return out


def _finish(completion: Completion, body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``finish_reason`` plus vLLM's ``stop_reason`` (a stop string, or null for EOS)."""
    stop = body.get("stop") or []
    stops = [stop] if isinstance(stop, str) else list(stop)
    reason = stops[0] if completion.finish_reason == "stop" and stops else None
    return {"finish_reason": _FINISH[completion.finish_reason], "stop_reason": reason}


def _envelope(obj: str, model: str, choices: list[dict[str, Any]], completions: list[Completion]) -> dict[str, Any]:
    prompt_tokens = completions[0].prompt_tokens if completions else 0
    completion_tokens = sum(c.completion_tokens for c in completions)
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _message(m: dict[str, Any]) -> Message:
    """A request's chat message as a backend turn (tool calls with their arguments decoded)."""
    calls = tuple(
        ToolCall(id=c["id"], name=c["function"]["name"], arguments=json.loads(c["function"]["arguments"] or "{}"))
        for c in m.get("tool_calls") or ()
    )
    content = m.get("content")
    return Message(role=m.get("role"), content="" if content is None else _content(content), name=m.get("name"),
                   tool_calls=calls, tool_call_id=m.get("tool_call_id"))


def _as_tool_call(text: str, index: int) -> dict[str, Any] | None:
    """A scripted reply ``{"name": ..., "arguments": ...}`` as an OpenAI tool call (arguments as JSON text,
    kept verbatim when the script gives them as a string); None for any other reply (a text answer)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or "name" not in data:
        return None
    arguments = data.get("arguments", {})
    text_args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": f"call_{index}_{uuid.uuid4().hex[:8]}", "type": "function",
            "function": {"name": data["name"], "arguments": text_args}}


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise _BadRequestError("message content must be a string or a list of text parts")


def _error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": code}}


async def _cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Fault", "OpenAIServer", "tokenize"]
