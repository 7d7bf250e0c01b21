"""`sfrun serve` over a real uvicorn socket: the command end to end, load without resets, stalled clients."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from serve_support import CHAT, RECIPES, Gate, chat, make_app

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.serve.server import bind_socket, uvicorn_config


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`sfrun serve recipes --backend scripted:FILE` in a subprocess; yields its base URL."""
    script = tmp_path_factory.mktemp("serve") / "script.json"
    script.write_text(json.dumps({"": "The answer is 4"}))  # "" occurs in every prompt: one reply for all
    proc = subprocess.Popen(
        [sys.executable, "-m", "sfdsl.cli", "serve", str(RECIPES), "--port", "0", "--backend", f"scripted:{script}",
         "--max-concurrency", "16", "--max-queue", "4096"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://\S+)/v1", line)
        assert match, line + (proc.stderr.read() if proc.stderr else "")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_health_models_chat_stream_errors_and_metrics_over_the_socket(served: str) -> None:
    shipped = {name for f in RECIPES.glob("*.sf") for name in sfdsl.load(f).names}
    with httpx.Client(base_url=served, timeout=30) as http:
        assert http.get("/health").status_code == 200
        assert {m["id"] for m in http.get("/v1/models").json()["data"]} == shipped
        reply = http.post(CHAT, json=chat("self_consistency", "2+2?"))
        body = reply.json()
        assert reply.status_code == 200 and body["choices"][0]["message"]["content"] == "4"
        assert body["usage"]["completion_tokens"] > 0 and body["usage"]["prompt_tokens"] > 0
        with http.stream("POST", CHAT, json=chat("chain_of_thought", "2+2?", stream=True)) as streamed:
            lines = [line for line in streamed.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "data: [DONE]" and len(lines) >= 4
        bad = http.post(CHAT, content=b'{"model": "self_consistency", "messages": [', headers={
            "content-type": "application/json"})
        assert 400 <= bad.status_code < 500 and bad.json()["error"]["code"] == "invalid_json"
        metrics = http.get("/metrics").text
        assert "sfdsl_requests_total" in metrics and "sfdsl_run_seconds_bucket" in metrics


def test_load_without_connection_resets(served: str) -> None:
    """1,000 requests at concurrency 64, each on a fresh connection: no resets (the benchmark runs 2,000)."""
    total, concurrency = 1000, 64
    failures: list[str] = []
    statuses: dict[int, int] = {}

    async def go() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=served, timeout=60, limits=limits) as http:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(total):
                queue.put_nowait(i)

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    try:
                        reply = await http.post(CHAT, json=chat("chain_of_thought", f"{i}+1?"))
                        statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                    except httpx.TransportError as exc:
                        failures.append(type(exc).__name__)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(go())
    assert failures == [] and statuses == {200: total}


def test_stalled_heads_and_bodies_time_out() -> None:
    app = make_app(body_timeout_s=0.5)

    async def go() -> tuple[bytes, bytes, int]:
        sock = bind_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, head_timeout_s=0.5))
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # head never finished
            head = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo")
            body = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                still = (await http.post(CHAT, json=chat())).status_code
            return head, body, still
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)

    head, body, still = asyncio.run(go())
    assert head == b""  # closed without an answer
    assert body.startswith(b"HTTP/1.1 408") and b"body_timeout" in body
    assert still == 200


def test_closing_the_connection_cancels_the_run() -> None:
    gate = Gate()
    app = make_app(ScriptedBackend(gate))
    body = json.dumps(chat("chain_of_thought")).encode()

    async def go() -> tuple[int, int]:
        sock = bind_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await asyncio.wait_for(gate.started.wait(), 10)
            writer.close()
            for _ in range(500):
                if gate.cancelled:
                    break
                await asyncio.sleep(0.01)
            return gate.cancelled, app.state.runner.limiter.in_flight
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)

    cancelled, in_flight = asyncio.run(go())
    assert cancelled == 1 and in_flight == 0
