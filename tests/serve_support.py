"""Test helpers for the serve app: an app on the scripted backend and an in-process client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


class PlainBackend(Backend):
    """Answers every prompt the same and keeps nothing (ScriptedBackend records every request)."""

    model_id = "plain"

    async def generate(self, request: GenerateRequest) -> list[Completion]:
        return [Completion(text="The answer is 4", completion_tokens=4, prompt_tokens=10, index=i)
                for i in range(request.n)]

    async def score(self, request: ScoreRequest) -> list[SequenceScore]:
        return [SequenceScore(token_logprobs=[-0.1]) for _ in request.continuations]
