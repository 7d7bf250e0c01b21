"""What protects the server from one request: run slots with a bounded queue, body limits, JSON checks.

Each check fails with an HTTPError that the app answers as an OpenAI-shaped error:

* no run slot and a full queue: 429 with ``Retry-After``;
* a ``Content-Length`` that is not a number: 400; a body over the limit: 413, decided
  from the header when there is one and else while the stream is read, never after;
* a body that does not arrive in time: 408;
* bytes that are not UTF-8, text that is not JSON, JSON nested too deeply or not an object,
  NaN or an infinite number anywhere: 400.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from sfdsl.serve import strict
from sfdsl.serve.protocol import HTTPError

T = TypeVar("T")


class ClientGone(Exception):
    """Raised when the client closes its connection before its answer is sent."""


class RunLimiter:
    """At most ``max_concurrency`` runs at once, at most ``max_queue`` requests waiting for one.

    ``reserve()`` decides at once (so a streaming request learns it before its headers go out);
    ``slot()`` then waits for a run slot and holds it.
    """

    def __init__(self, *, max_concurrency: int, max_queue: int) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.in_flight = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(max_concurrency)
        self._mean_run_s = 1.0

    def reserve(self) -> None:
        """Take a place in the queue, or raise a 429 when there is none."""
        if self.in_flight + self.waiting >= self.max_concurrency + self.max_queue:
            raise HTTPError(429, f"server busy: {self.in_flight} runs in flight and {self.waiting} queued; "
                                 "retry later", type="rate_limit_error", code="queue_full",
                            headers={"Retry-After": str(self.retry_after())})
        self.waiting += 1

    def cancel(self) -> None:
        """Give back a reservation that will not run."""
        self.waiting -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a run slot (after ``reserve()``) and hold it for the block."""
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        started = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()
            elapsed = asyncio.get_running_loop().time() - started
            self._mean_run_s = 0.9 * self._mean_run_s + 0.1 * elapsed

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough for one more request."""
        backlog = (self.waiting + 1) / self.max_concurrency
        return max(1, math.ceil(backlog * self._mean_run_s))


async def read_body(request: Request, *, max_bytes: int, timeout_s: float, max_drain_bytes: int = 0) -> bytes:
    """The request body, refused (413) as soon as it passes ``max_bytes``; 408 when it stalls.

    Before a 413 the rest of the body (up to ``max_drain_bytes``, within ``timeout_s``) is read and
    dropped: closing a socket with unread data resets it, and the client would lose the 413.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise HTTPError(400, f"bad Content-Length header {declared[:40]!r}", code="bad_content_length")
        if int(declared) > max_bytes:
            if request.headers.get("expect", "").lower() != "100-continue":  # else the body was never sent
                await _drain(request, max_drain_bytes, timeout_s)
            raise _too_large(max_bytes, int(declared))
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in stream:
                size += len(chunk)
                if size > max_bytes:
                    chunks.clear()
                    break
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPError(408, f"request body not received within {timeout_s:g}s", code="body_timeout",
                        headers={"Connection": "close"}) from None
    except ClientDisconnect:
        raise ClientGone from None
    if size > max_bytes:
        await _drain(request, max_drain_bytes, timeout_s, stream=stream)
        raise _too_large(max_bytes, None)
    return b"".join(chunks)


async def _drain(request: Request, limit: int, timeout_s: float, stream: AsyncIterator[bytes] | None = None) -> None:
    """Read and drop what is left of a body, up to ``limit`` bytes and ``timeout_s`` seconds."""
    dropped = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in stream or request.stream():
                dropped += len(chunk)
                if dropped > limit:
                    return
    except (TimeoutError, ClientDisconnect):
        return


def _too_large(max_bytes: int, declared: int | None) -> HTTPError:
    size = f" ({declared} bytes)" if declared is not None else ""
    return HTTPError(413, f"request body{size} is larger than the limit of {max_bytes} bytes", code="body_too_large",
                     headers={"Connection": "close"})


def parse_json_object(body: bytes, *, max_depth: int) -> dict[str, Any]:
    """Decode a body as a UTF-8 JSON object nested at most ``max_depth`` deep."""
    if not body.strip():
        raise HTTPError(400, "empty request body; send a JSON object", code="invalid_json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPError(400, f"request body is not valid UTF-8 (byte {exc.start})", code="invalid_encoding") from None
    try:
        data = strict.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                        code="invalid_json") from None
    except RecursionError:
        raise HTTPError(400, f"JSON nested deeper than {max_depth} levels", code="json_too_deep") from None
    if not isinstance(data, dict):
        raise HTTPError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    if _depth(data) > max_depth:
        raise HTTPError(400, f"JSON nested deeper than {max_depth} levels", code="json_too_deep")
    strict.reject_non_finite(data)
    return data


def _depth(value: Any) -> int:
    """Nesting depth of arrays and objects, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


async def until_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` while watching the connection; if the client leaves first, cancel it and raise ClientGone.

    Call it once the body has been read: from then on ``receive`` only reports the disconnect.
    """
    job = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait({job, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (job, watcher):
            task.cancel()
        await asyncio.gather(job, watcher, return_exceptions=True)
    if job.cancelled():  # cancelled above because the watcher saw the client leave
        raise ClientGone
    return job.result()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
