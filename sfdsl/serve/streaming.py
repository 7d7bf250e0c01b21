"""Server-sent events of one run, in OpenAI's chunk format.

Every chunk but the optional usage chunk carries a ``choices`` list, so the canonical
client loop (``for chunk in stream: chunk.choices[0].delta.content``) works. The order:

1. a first chunk with ``delta: {"role": "assistant", "content": ""}`` (chat only);
2. as the run goes: one progress chunk per finished step, its details in an ``sfdsl``
   field that OpenAI clients ignore (in the ``delta`` of a chat chunk, in the choice of a
   text chunk), and, when the answer is a single sample of one ``generate``, its tokens
   as ``delta.content`` pieces as they decode;
3. the rest of the reply (``sfdsl.chat_replies``: the content not streamed yet, the
   refusal or the tool calls), then a chunk with an empty delta and the
   ``finish_reason``, which also carries the run's ``sfdsl`` object;
4. with ``stream_options.include_usage`` only: a chunk with ``usage`` and ``choices: []``;
5. ``data: [DONE]``.

A run that fails after the headers went out sends one ``{"error": ...}`` chunk
instead of 3 and 4. A client that disconnects cancels the run; the request is
then counted as status 499 (``scope["sfdsl.client_closed"]``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.types import Receive, Scope, Send

from sfdsl.chat_replies import ChatReply, chat_reply, sfdsl_object, usage
from sfdsl.log import get_logger
from sfdsl.runtime.context import Listener
from sfdsl.runtime.results import RunResult
from sfdsl.runtime.token_stream import TokenSink
from sfdsl.serve.limits import ClientGone, until_disconnect
from sfdsl.serve.metrics import CLIENT_CLOSED_KEY
from sfdsl.serve.protocol import HTTPError

log = get_logger(__name__)
Kind = Literal["chat", "text"]
RunFn = Callable[[Listener, TokenSink], Awaitable[RunResult]]
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]
Event = tuple[Literal["step", "text"], Any]


def sse(data: dict[str, Any] | str) -> bytes:
    """One ``data:`` event."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    return f"data: {text}\n\n".encode()


class ChunkMaker:
    """Builds the chunks of one stream (chat or text completion)."""

    def __init__(self, kind: Kind, *, model: str, stream_id: str, include_usage: bool = False) -> None:
        self.kind = kind
        self.model = model
        self.id = stream_id
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        more = {"usage": None} if self.include_usage else {}
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": choices, **more, **extra}

    def _choice(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        if self.kind == "chat":
            return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra)
        text = delta.get("content") or ""
        fields = {"sfdsl": delta["sfdsl"]} if "sfdsl" in delta else {}
        return self._chunk([{"index": 0, "text": text, "logprobs": None, "finish_reason": finish, **fields}],
                           **extra)

    def start(self) -> dict[str, Any] | None:
        """The chat stream's first chunk (the role); None for text completions."""
        return self._choice({"role": "assistant", "content": ""}) if self.kind == "chat" else None

    def progress(self, step: dict[str, Any]) -> dict[str, Any]:
        return self._choice({"sfdsl": step})

    def text(self, piece: str) -> dict[str, Any]:
        return self._choice({"content": piece})

    def reply(self, reply: ChatReply, streamed: str) -> list[dict[str, Any]]:
        """The reply's chunks not yet sent (content past what streamed, the refusal, the tool calls)."""
        if self.kind == "text":
            rest = reply.text[len(streamed):] if reply.text.startswith(streamed) else reply.text
            return [self.text(rest)] if rest else []
        delta: dict[str, Any] = {}
        content = reply.content or ""
        if content.startswith(streamed) and len(content) > len(streamed):
            delta["content"] = content[len(streamed):]
        elif not content.startswith(streamed):
            log.warning("stream_diverged", streamed_chars=len(streamed), content_chars=len(content))
        if reply.refusal is not None:
            delta["refusal"] = reply.refusal
        if reply.tool_calls:
            delta["tool_calls"] = [{"index": i, **call.to_wire().model_dump()}
                                   for i, call in enumerate(reply.tool_calls)]
        return [self._choice(delta)] if delta else []

    def finish(self, reply: ChatReply, result: RunResult) -> dict[str, Any]:
        return self._choice({}, reply.finish_reason, sfdsl=sfdsl_object(result))

    def usage(self, result: RunResult) -> dict[str, Any]:
        return {**self._chunk([]), "usage": usage(result)}


class StepProgress:
    """A trace listener that turns finished steps into progress records, in finishing order."""

    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queue = queue
        self._locations: dict[str, str] = {}

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        node = str(fields.get("node_id", ""))
        if event == "node_started":
            self._locations[node] = str(fields.get("location", ""))
        elif event == "node_finished":
            self._queue.put_nowait(("step", {
                "event": "step_finished", "run_id": fields.get("run_id"), "node_id": node,
                "kind": fields.get("kind"), "location": self._locations.pop(node, None),
                "wall_s": round(float(fields.get("wall_s") or 0.0), 6), "calls": fields.get("calls"),
                "completion_tokens": fields.get("completion_tokens"), "error": fields.get("error"),
            }))


class RunStream:
    """An ASGI response that runs a recipe and streams its progress, tokens and reply as SSE.

    Args:
        run: runs the recipe with a trace listener and a token sink; raises HTTPError on failure.
        chunks: builds the chunks.
        on_finish: called once when the stream ends, however it ends (e.g. to give back a queue place).
    """

    def __init__(self, run: RunFn, chunks: ChunkMaker, *, on_finish: Callable[[], None] | None = None) -> None:
        self._run = run
        self._chunks = chunks
        self._on_finish = on_finish

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await until_disconnect(receive, self._stream(send))
        except (ClientGone, OSError):
            scope[CLIENT_CLOSED_KEY] = True  # the run was cancelled; nobody is left to answer
        finally:
            if self._on_finish is not None:
                self._on_finish()

    async def _stream(self, send: Send) -> None:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()

        async def run() -> RunResult | HTTPError:
            try:
                return await self._run(StepProgress(queue), lambda piece: queue.put_nowait(("text", piece)))
            except HTTPError as exc:
                return exc
            finally:
                queue.put_nowait(None)

        async def body(data: dict[str, Any] | str, *, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": sse(data), "more_body": more})

        first = self._chunks.start()
        if first is not None:
            await body(first)
        streamed: list[str] = []
        async with asyncio.TaskGroup() as group:
            runner = group.create_task(run())
            while (event := await queue.get()) is not None:
                kind, value = event
                if kind == "text":
                    streamed.append(value)
                await body(self._chunks.text(value) if kind == "text" else self._chunks.progress(value))
        outcome = runner.result()
        if isinstance(outcome, HTTPError):
            await body(outcome.body())
        else:
            reply = chat_reply(outcome)
            for chunk in self._chunks.reply(reply, "".join(streamed)):
                await body(chunk)
            await body(self._chunks.finish(reply, outcome))
            if self._chunks.include_usage:
                await body(self._chunks.usage(outcome))
        await body("[DONE]", more=False)
