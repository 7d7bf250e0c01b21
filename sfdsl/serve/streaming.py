"""Server-sent events of one run, in OpenAI's chunk format.

The order is fixed:

1. one progress chunk per finished step, its details in an ``sfdsl`` field that
   OpenAI clients ignore (in the ``delta`` of a chat chunk, in the choice of a text chunk);
2. the answer, with ``finish_reason: "stop"``;
3. a chunk with ``usage`` (and the run's ``sfdsl`` block) and no choices;
4. ``data: [DONE]``.

A run that fails after the headers went out sends one ``{"error": ...}`` chunk
instead of 2 and 3. A client that disconnects cancels the run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.types import Receive, Scope, Send

from sfdsl.runtime.context import Listener
from sfdsl.runtime.results import RunResult
from sfdsl.serve.limits import ClientGone, until_disconnect
from sfdsl.serve.protocol import HTTPError, answer_text, sfdsl_block, usage

Kind = Literal["chat", "text"]
RunFn = Callable[[Listener], Awaitable[RunResult]]
HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
           (b"x-accel-buffering", b"no")]


def sse(data: dict[str, Any] | str) -> bytes:
    """One ``data:`` event."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), default=str)
    return f"data: {text}\n\n".encode()


class ChunkMaker:
    """Builds the chunks of one stream (chat or text completion)."""

    def __init__(self, kind: Kind, *, model: str, stream_id: str) -> None:
        self.kind = kind
        self.model = model
        self.id = stream_id
        self.created = int(time.time())
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                "choices": choices, **extra}

    def progress(self, step: dict[str, Any]) -> dict[str, Any]:
        if self.kind == "chat":
            return self._chunk([{"index": 0, "delta": {"sfdsl": step}, "finish_reason": None}])
        return self._chunk([{"index": 0, "text": "", "sfdsl": step, "finish_reason": None}])

    def answer(self, result: RunResult) -> dict[str, Any]:
        text = answer_text(result)
        if self.kind == "chat":
            return self._chunk([{"index": 0, "delta": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}])
        return self._chunk([{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}])

    def usage(self, result: RunResult) -> dict[str, Any]:
        return self._chunk([], usage=usage(result), sfdsl=sfdsl_block(result))


class StepProgress:
    """A trace listener that turns finished steps into progress records, in finishing order."""

    def __init__(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queue = queue
        self._locations: dict[str, str] = {}

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        node = str(fields.get("node_id", ""))
        if event == "node_started":
            self._locations[node] = str(fields.get("location", ""))
        elif event == "node_finished":
            self._queue.put_nowait({
                "event": "step_finished", "run_id": fields.get("run_id"), "node_id": node,
                "kind": fields.get("kind"), "location": self._locations.pop(node, None),
                "wall_s": round(float(fields.get("wall_s") or 0.0), 6), "calls": fields.get("calls"),
                "completion_tokens": fields.get("completion_tokens"), "error": fields.get("error"),
            })


class RunStream:
    """An ASGI response that runs a recipe and streams its progress and answer as SSE.

    Args:
        run: runs the recipe with a trace listener; raises HTTPError on failure.
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
            pass  # the run was cancelled; nobody is left to answer
        finally:
            if self._on_finish is not None:
                self._on_finish()

    async def _stream(self, send: Send) -> None:
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        async def run() -> RunResult | HTTPError:
            try:
                return await self._run(StepProgress(queue))
            except HTTPError as exc:
                return exc
            finally:
                queue.put_nowait(None)

        async def body(data: dict[str, Any] | str, *, more: bool = True) -> None:
            await send({"type": "http.response.body", "body": sse(data), "more_body": more})

        async with asyncio.TaskGroup() as group:
            runner = group.create_task(run())
            while (step := await queue.get()) is not None:
                await body(self._chunks.progress(step))
        outcome = runner.result()
        if isinstance(outcome, HTTPError):
            await body(outcome.body())
        else:
            await body(self._chunks.answer(outcome))
            await body(self._chunks.usage(outcome))
        await body("[DONE]", more=False)
