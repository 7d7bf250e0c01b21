"""The ASGI app of `sfrun serve`: every recipe as an OpenAI-compatible model, on starlette.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``, ``GET /v1/models/{id}``,
``GET /health`` and ``GET /metrics``. Every error is OpenAI-shaped JSON
(``{"error": {"message", "type", "code"}}``) and no request can stop the server.

Example:
    >>> from sfdsl.serve import RecipeRegistry, ServeConfig, create_app
    >>> app = create_app(RecipeRegistry.from_path("recipes"), config=ServeConfig(max_concurrency=4))  # doctest: +SKIP
    >>> # uvicorn.run(app) or httpx.AsyncClient(transport=httpx.ASGITransport(app))
"""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.decode_thread import DecodeThread
from sfdsl.runtime.pool import BackendPool, pool_from_spec
from sfdsl.runtime.token_stream import streamed_generate
from sfdsl.serve.config import ServeConfig
from sfdsl.serve.limits import ClientGone, parse_json_object, read_body, until_disconnect
from sfdsl.serve.metrics import CLIENT_CLOSED, CONTENT_TYPE, RequestCounter
from sfdsl.serve.protocol import (
    ChatRequest,
    CompletionRequest,
    ErrorType,
    HTTPError,
    chat_completion,
    parse_request,
    text_completion,
)
from sfdsl.serve.registry import RecipeRegistry, ServedRecipe
from sfdsl.serve.runs import Runner
from sfdsl.serve.streaming import ChunkMaker, Kind, RunStream
from sfdsl.serve.strict import check_openai_fields

PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/{id}", "/health", "/metrics")


def default_pool_factory(spec: str | None = None, *, model: str | None = None,
                         cache_max_bytes: int | None = None) -> Callable[[str | None], BackendPool]:
    """Pools for ``--backend spec``: the alias of a model name overrides ``model``; a bounded on-disk cache.

    Every pool it makes steps its CPU models on one shared decode thread.
    """
    decode_thread = DecodeThread(name="sfdsl-llama-serve")

    def make(alias: str | None) -> BackendPool:
        wrap = None
        if cache_max_bytes is not None:
            from sfdsl.runtime.cache import CachedBackend

            def wrap(backend: Backend) -> Backend:
                return CachedBackend(backend, max_bytes=cache_max_bytes)

        return pool_from_spec(spec, model=alias or model, wrap=wrap, decode_thread=decode_thread)

    return make


def create_app(recipes: RecipeRegistry | str | Path, *, config: ServeConfig | None = None,
               make_pool: Callable[[str | None], BackendPool] | None = None) -> Starlette:
    """A starlette app serving ``recipes`` (a registry, or a .sf file or directory to load).

    Args:
        config: limits and caps; the defaults of ServeConfig when None.
        make_pool: a backend pool for a model override (None: the recipes' own models); each pool is owned by
            one ``sfdsl.Runtime``, made on first use and shared by every run. Default: each recipe's models,
            cached on disk.

    Raises:
        CompileError, SourceNotFoundError: when recipes are loaded from a path that fails.
        InputError: when ``config.inputs`` names an input no recipe has, or gives a bad value.
    """
    registry = recipes if isinstance(recipes, RecipeRegistry) else RecipeRegistry.from_path(recipes)
    config = config or ServeConfig()
    runner = Runner(registry, config=config,
                    make_pool=make_pool or default_pool_factory(cache_max_bytes=config.cache_max_bytes))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        gc.freeze()  # recipes, modules and models loaded at start-up: no full collection scans them again
        try:
            yield
        finally:
            await runner.aclose()

    app = Starlette(
        routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"]),
                Route("/v1/completions", completions, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
                Route("/v1/models/{model_id:path}", model, methods=["GET"]),
                Route("/health", health, methods=["GET"]),
                Route("/metrics", metrics, methods=["GET"])],
        middleware=[Middleware(RequestCounter, metrics=lambda: runner.metrics, paths=PATHS)],
        exception_handlers={HTTPException: http_exception, Exception: unexpected_error},
        lifespan=lifespan,
    )
    app.state.runner = runner
    return app


def _runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


async def chat_completions(request: Request) -> Response:
    return await _complete(request, ChatRequest)


async def completions(request: Request) -> Response:
    return await _complete(request, CompletionRequest)


async def _complete(request: Request, kind: type[ChatRequest] | type[CompletionRequest]) -> Response:
    """Read and check the request, then run it (streaming or not); each failure is an error answer."""
    runner = _runner(request)
    config = runner.config
    try:
        body = await read_body(request, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_s,
                               max_drain_bytes=config.max_drain_bytes)
        data = parse_json_object(body, max_depth=config.max_json_depth)
        del body
        check_openai_fields(data)
        parsed = parse_request(kind, data)
        prepared = await runner.prepare(parsed)
        ticket = runner.ticket()
    except HTTPError as exc:
        return exc.response()
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    shape: Kind = "chat" if kind is ChatRequest else "text"
    if parsed.stream:
        prefix = "chatcmpl" if shape == "chat" else "cmpl"
        include_usage = parsed.stream_options is not None and parsed.stream_options.include_usage
        chunks = ChunkMaker(shape, model=parsed.model, stream_id=f"{prefix}-{uuid.uuid4().hex[:12]}",
                            include_usage=include_usage)
        return _Stream(RunStream(lambda listener, sink: runner.execute(prepared, ticket, listener, sink), chunks,
                                 on_finish=ticket.close))
    try:
        result = await until_disconnect(request.receive, runner.execute(prepared, ticket))
    except HTTPError as exc:
        return exc.response()
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    finally:
        ticket.close()
    build = chat_completion if shape == "chat" else text_completion
    return JSONResponse(build(result, model=parsed.model))


class _Stream(Response):
    """Adapts a RunStream (a plain ASGI callable) to a starlette Response."""

    def __init__(self, stream: RunStream) -> None:
        super().__init__(status_code=200)
        self._stream = stream

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._stream(scope, receive, send)


def model_card(served: ServedRecipe, runner: Runner) -> dict[str, Any]:
    """One served recipe as an OpenAI model object; its inputs, streaming and bound under the caps in ``sfdsl``."""
    return {"id": served.name, "object": "model", "created": 0, "owned_by": "sfdsl",
            "sfdsl": {"file": served.recipe.file, "inputs": [{"name": n, "type": t} for n, t in served.params],
                      "streams_tokens": streamed_generate(served.recipe.ast) is not None,
                      **runner.admission.models[served.name]}}


async def models(request: Request) -> Response:
    """Every served recipe, with its inputs."""
    runner = _runner(request)
    return JSONResponse({"object": "list", "data": [model_card(served, runner) for served in runner.registry]})


async def model(request: Request) -> Response:
    """One served recipe (``GET /v1/models/{id}``); a 404 naming the served ones otherwise."""
    try:
        served, _ = _runner(request).registry.resolve(request.path_params["model_id"])
    except HTTPError as exc:
        return exc.response()
    return JSONResponse({**model_card(served, _runner(request)), "id": request.path_params["model_id"]})


async def health(request: Request) -> Response:
    runner = _runner(request)
    return JSONResponse({"status": "ok", "models": len(runner.registry), "runs_in_flight": runner.limiter.in_flight,
                         "queued": runner.limiter.waiting})


async def metrics(request: Request) -> Response:
    return Response(_runner(request).metrics.render(), media_type=CONTENT_TYPE)


async def http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, as OpenAI-shaped errors."""
    status = int(getattr(exc, "status_code", 500))
    detail = str(getattr(exc, "detail", "error"))
    kind: ErrorType = "not_found_error" if status == 404 else "invalid_request_error"
    headers = dict(getattr(exc, "headers", None) or {})
    return HTTPError(status, f"{request.method} {request.url.path}: {detail}", type=kind,
                     code=detail.lower().replace(" ", "_"), headers=headers).response()


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug in the server itself: a 500 without a traceback."""
    return HTTPError(500, f"internal server error ({type(exc).__name__})", type="server_error",
                     code="internal_error").response()
