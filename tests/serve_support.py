"""Test helpers for the serve app: an app on the scripted backend and an in-process client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from sfdsl import ScriptedBackend
from sfdsl.runtime.backends.base import Backend, Completion, GenerateRequest, ScoreRequest, SequenceScore
from sfdsl.runtime.pool import BackendPool
from sfdsl.serve import RecipeRegistry, ServeConfig, create_app

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes"
CHAT = "/v1/chat/completions"


def answer_fn(prompt: str, index: int) -> str:
    return "The answer is 12" if "dozen" in prompt else "The answer is 4"


def make_app(backend: Any = None, *, path: Path = RECIPES, aliases: list[str | None] | None = None,
             **config: Any) -> Starlette:
    """The app over ``path`` with every model on one scripted backend; records the aliases pools were made for."""
    backend = backend or ScriptedBackend(answer_fn)

    def make_pool(alias: str | None) -> BackendPool:
        if aliases is not None:
            aliases.append(alias)
        return BackendPool(backend=backend)

    return create_app(RecipeRegistry.from_path(path), config=ServeConfig(**config), make_pool=make_pool)


@asynccontextmanager
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process; closes the app's pools after."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=30) as http:
        try:
            yield http
        finally:
            await app.state.runner.aclose()


def chat(model: str = "self_consistency", text: str = "How many eggs in a dozen?", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


class Gate:
    """A scripted reply function that waits until released, recording starts and cancellations."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = 0
        self.calls = 0

    async def __call__(self, prompt: str, index: int) -> str:
        self.calls += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "The answer is 4"


async def post_then_disconnect(app: Starlette, payload: dict[str, Any], gate: Gate) -> list[dict[str, Any]]:
    """POST ``payload`` to the chat endpoint over raw ASGI, disconnecting once ``gate`` has started; what was sent."""
    body = json.dumps(payload).encode()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await gate.started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": CHAT, "raw_path": CHAT.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("serve.test", 80)}
    await asyncio.wait_for(app(scope, receive, send), 10)
    await app.state.runner.aclose()
    return sent


class PlainBackend(Backend):
    """Answers every prompt the same and keeps nothing (ScriptedBackend records every request)."""

    model_id = "plain"

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        return [Completion(text="The answer is 4", completion_tokens=4, prompt_tokens=10, index=i)
                for i in range(request.n)]

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        return [SequenceScore(token_logprobs=[-0.1]) for _ in request.continuations]


@contextmanager
def running(app: Starlette) -> Iterator[str]:
    """The app served by uvicorn on a loopback socket, in a background thread; yields its base URL."""
    import uvicorn

    from sfdsl.serve.server import bind_socket, uvicorn_config

    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
