"""Run slots and queue, body reading limits, JSON checks, and watching for disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from sfdsl.serve.limits import ClientGone, RunLimiter, parse_json_object, read_body, until_disconnect
from sfdsl.serve.protocol import HTTPError


def request_with(chunks: list[bytes], headers: dict[str, str] | None = None, *, stall: bool = False) -> Request:
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if pending:
            return {"type": "http.request", "body": pending.pop(0), "more_body": bool(pending) or stall}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}, receive)


def status_of(coro: Any) -> int:
    with pytest.raises(HTTPError) as caught:
        asyncio.run(coro)
    return caught.value.status


def test_limiter_queues_up_to_its_bound_then_refuses_with_retry_after() -> None:
    async def go() -> None:
        limiter = RunLimiter(max_concurrency=1, max_queue=1)
        limiter.reserve()
        limiter.reserve()
        with pytest.raises(HTTPError) as refused:
            limiter.reserve()
        assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
        async with limiter.slot():
            assert (limiter.in_flight, limiter.waiting) == (1, 1)
            waiter = asyncio.ensure_future(_hold(limiter))
            await asyncio.sleep(0.01)
            assert limiter.in_flight == 1  # the second waits for the slot
        await waiter
        assert (limiter.in_flight, limiter.waiting) == (0, 0)

    asyncio.run(go())


async def _hold(limiter: RunLimiter) -> None:
    async with limiter.slot():
        pass


def test_cancelled_waiter_gives_back_its_queue_place() -> None:
    async def go() -> None:
        limiter = RunLimiter(max_concurrency=1, max_queue=4)
        limiter.reserve()
        async with limiter.slot():
            limiter.reserve()
            waiter = asyncio.ensure_future(_hold(limiter))
            await asyncio.sleep(0.01)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            assert limiter.waiting == 0
        assert limiter.in_flight == 0

    asyncio.run(go())


def test_body_over_the_limit_is_refused_while_streaming_without_content_length() -> None:
    chunks = [b"x" * 600, b"y" * 600, b"z" * 600]
    assert status_of(read_body(request_with(chunks), max_bytes=1000, timeout_s=5)) == 413


def test_body_refused_from_content_length_and_bad_content_length() -> None:
    big = request_with([b"{}"], {"content-length": str(50 << 20)})
    assert status_of(read_body(big, max_bytes=1000, timeout_s=5)) == 413
    bad = request_with([b"{}"], {"content-length": "-4"})
    assert status_of(read_body(bad, max_bytes=1000, timeout_s=5)) == 400


def test_stalled_body_times_out_with_408() -> None:
    stalled = request_with([b'{"model": '], stall=True)
    assert status_of(read_body(stalled, max_bytes=1000, timeout_s=0.1)) == 408


def test_body_within_limits_is_returned_whole() -> None:
    assert asyncio.run(read_body(request_with([b'{"a"', b": 1}"]), max_bytes=100, timeout_s=5)) == b'{"a": 1}'


@pytest.mark.parametrize(("body", "code"), [
    (b"", "invalid_json"), (b"nope", "invalid_json"), (b"[1, 2]", "invalid_json"), (b'"text"', "invalid_json"),
    (b"\xc3\x28{}", "invalid_encoding"), (b"[" * 100_000, "json_too_deep"),
    (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "json_too_deep"),
])
def test_parse_json_object_refuses(body: bytes, code: str) -> None:
    with pytest.raises(HTTPError) as caught:
        parse_json_object(body, max_depth=32)
    assert caught.value.status == 400 and caught.value.code == code


def test_parse_json_object_accepts_nesting_up_to_the_limit() -> None:
    assert parse_json_object(b'{"a": [[{"b": 1}]]}', max_depth=4) == {"a": [[{"b": 1}]]}


def test_until_disconnect_returns_the_result_or_cancels_on_disconnect() -> None:
    async def go() -> None:
        left = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await left.wait()
            return {"type": "http.disconnect"}

        assert await until_disconnect(receive, asyncio.sleep(0, result=7)) == 7
        cancelled = []

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        left.set()
        with pytest.raises(ClientGone):
            await until_disconnect(receive, forever())
        assert cancelled == [True]

    asyncio.run(go())
