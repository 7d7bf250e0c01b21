"""The server over a real socket (sfdsl/serve/server.py): protocol errors as JSON, whole 413s, SIGTERM drains.

Named after the reproductions of issue 21, items 1, 2 and 10.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from serve_support import CHAT, PlainBackend, chat, make_app

from sfdsl.serve.server import bind_socket, uvicorn_config


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """The app on uvicorn on a free loopback port, in this loop; yields the port."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def exchange(port: int, raw: bytes, body_size: int = 0) -> bytes:
    """Send ``raw`` (then ``body_size`` bytes of body in 64 KiB chunks) while reading the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        try:
            writer.write(raw)
            chunk, left = b"x" * 65536, body_size
            while left > 0:
                writer.write(chunk[:left])
                left -= len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.ensure_future(send())
    try:
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        await sender
        writer.close()


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


BAD_REQUESTS = {
    "bad_content_length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}",
    "duplicate_content_length": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 3\r\n\r\n{}"),
    "bad_chunk_size": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\n{}\r\n0\r\n\r\n"),
    "nul_in_header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_protocol_errors_from_uvicorn_come_back_as_openai_json(case: str) -> None:
    async def go() -> bytes:
        async with serving(make_app(PlainBackend())) as port:
            return await exchange(port, BAD_REQUESTS[case])

    status, headers, body = split_response(asyncio.run(go()))
    assert status == 400 and headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_http_request"


@pytest.mark.parametrize("chunked", [False, True])
def test_the_413_for_a_50_mb_upload_is_delivered_whole(chunked: bool) -> None:
    size = 50 << 20
    if chunked:  # one chunk header for the lot: the body streams without a Content-Length
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{size:x}\r\n".encode())
    else:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()

    async def go() -> tuple[bytes, int]:
        async with serving(make_app(PlainBackend())) as port:
            data = await exchange(port, head, size)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                return data, (await http.get("/health")).status_code

    data, health = asyncio.run(go())
    status, headers, body = split_response(data)
    assert status == 413 and int(headers["content-length"]) == len(body)
    assert json.loads(body)["error"]["code"] == "body_too_large"
    assert health == 200


LONG = (Path(__file__).parent / "fixtures" / "serve" / "long_vote.sf").read_text()


def test_sigterm_drains_the_server_and_exits(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"": "The answer is 4"}))
    (tmp_path / "long.sf").write_text(LONG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sfdsl.cli", "serve", str(tmp_path / "long.sf"), "--port", "0", "--backend",
         f"scripted:{script}", "--timeout", "60", "--max-request-calls", "100000000", "--max-request-tokens",
         "10000000000", "--max-request-parallel", "100000000", "--max-run-memory-mb", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first, caps = proc.stdout.readline(), proc.stdout.readline()
        match = re.search(r"at (http://\S+)/v1", first)
        assert match, first
        assert "--max-request-calls" in caps and "100000000 model calls" in caps
        url = match.group(1)

        async def go() -> tuple[float, int | None]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                heavy = asyncio.ensure_future(http.post(CHAT, json=chat(
                    "long", sfdsl={"inputs": {"k": 10_000_000}})))
                await asyncio.sleep(1.0)
                assert (await http.get("/health")).json()["runs_in_flight"] == 1
                proc.send_signal(signal.SIGTERM)
                started = time.perf_counter()
                while proc.poll() is None and time.perf_counter() - started < 20:
                    await asyncio.sleep(0.05)
                waited = time.perf_counter() - started
                try:
                    status: int | None = (await heavy).status_code
                except httpx.TransportError:
                    status = None  # the drain's grace period ended and the connection closed
                return waited, status

        waited, status = asyncio.run(go())
        # uvicorn waits up to 5 s for runs in flight, cancels the rest, then re-raises the signal it caught
        assert proc.poll() in (0, -signal.SIGTERM) and waited < 15, (waited, proc.stderr.read() if proc.stderr else "")
        assert status in (None, 500, 503, 504)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
