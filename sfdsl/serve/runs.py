"""From a validated request to a finished run: routing, inputs, caps, the run slot, the timeout, errors."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfdsl.chat_inputs import UnsupportedParameter, inputs_from_chat, unplaced_fields
from sfdsl.errors import BackendError, BackendTimeout, BudgetExceeded, ContextOverflow, InputError, SfdslError
from sfdsl.log import get_logger
from sfdsl.runtime.context import Budget, Listener, observe
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import RunResult
from sfdsl.runtime.session import Runtime
from sfdsl.runtime.token_stream import TokenSink, streamed_generate
from sfdsl.serve.admission import Admission
from sfdsl.serve.config import ServeConfig
from sfdsl.serve.limits import RunLimiter
from sfdsl.serve.metrics import RunSpend, ServeMetrics
from sfdsl.serve.protocol import ChatRequest, CompletionRequest, HTTPError, unsupported_parameter
from sfdsl.serve.registry import RecipeRegistry, RuntimeSet, ServedRecipe

log = get_logger(__name__)


@dataclass(frozen=True)
class PreparedRun:
    """Everything a run needs, checked before it takes a run slot."""

    served: ServedRecipe
    inputs: dict[str, Any]
    seed: int
    runtime: Runtime
    budget: Budget | None = None  # max_tokens for a recipe without a max_tokens input: all generated tokens

    @property
    def streams_tokens(self) -> bool:
        """Whether the answer's tokens stream as they decode (a single sample of one generate)."""
        return streamed_generate(self.served.recipe.ast) is not None


class Ticket:
    """A request's place in the run queue; ``close()`` gives it back if the run never started."""

    def __init__(self, limiter: RunLimiter) -> None:
        limiter.reserve()
        self._limiter = limiter
        self._queued = True

    def slot(self) -> Any:
        self._queued = False
        return self._limiter.slot()

    def close(self) -> None:
        if self._queued:
            self._queued = False
            self._limiter.cancel()


class Runner:
    """Prepares and executes runs for one app."""

    def __init__(self, registry: RecipeRegistry, *, config: ServeConfig,
                 make_pool: Callable[[str | None], BackendPool]) -> None:
        self.registry = registry
        self.config = config
        self.runtimes = RuntimeSet(make_pool)
        self.limiter = RunLimiter(max_concurrency=config.max_concurrency, max_queue=config.max_queue)
        self.metrics = ServeMetrics(in_flight=lambda: self.limiter.in_flight, queued=lambda: self.limiter.waiting,
                                    backends=self.runtimes.backends)
        self.admission = Admission(registry, config)
        self.runtimes.get(None)  # a bad --backend spec fails at start-up, not at the first request

    async def prepare(self, request: ChatRequest | CompletionRequest) -> PreparedRun:
        """Route the request, bind its inputs and admit it by its static bound (off the loop); a 4xx otherwise."""
        served, alias = self.registry.resolve(request.model)
        self._check_n(request.n, "n")
        extra = request.sfdsl.inputs if request.sfdsl else None
        fields = request.request_fields()
        try:
            budget_tokens = honoured_fields(served, fields, extra)
            given = inputs_from_chat(served.params, request.chat_messages(), request_fields=fields,
                                     extra=extra, recipe=served.name)
        except UnsupportedParameter as exc:
            raise unsupported_parameter(exc.param, str(exc)) from None
        except InputError as exc:
            raise HTTPError(400, str(exc), code="invalid_input") from None
        if isinstance(given.get("n"), int) and not isinstance(given["n"], bool):
            self._check_n(given["n"], "sfdsl.inputs.n" if extra and "n" in extra else "n")
        inputs = (await self.admission.acheck(served, given)).inputs
        return PreparedRun(served=served, inputs=inputs, seed=request.seed or 0, runtime=self.runtimes.get(alias),
                           budget=self._budget(budget_tokens))

    def _budget(self, max_tokens: int | None) -> Budget:
        """The run's budget: the server's memory ceiling, and a request's ``max_tokens`` when no input takes it."""
        return Budget(max_memory_bytes=self.config.max_run_memory_bytes, max_tokens=max_tokens)

    def _check_n(self, n: int | None, param: str) -> None:
        if n is not None and not 1 <= n <= self.config.max_n:
            raise HTTPError(400, f"'{param}' must be between 1 and {self.config.max_n} on this server, got {n}",
                            code="n_out_of_range", param=param)

    def ticket(self) -> Ticket:
        """A place in the run queue, or a 429."""
        return Ticket(self.limiter)

    async def execute(self, run: PreparedRun, ticket: Ticket, listener: Listener | None = None,
                      on_token: TokenSink | None = None) -> RunResult:
        """Wait for a run slot and run; 504 past the timeout, a located 5xx when the run fails.

        ``on_token`` receives the answer's text as it decodes, when the answer streams.
        """
        recipe = run.served.recipe
        spent = RunSpend(listener)
        sink = None if on_token is None else _counted(on_token, spent)
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async with ticket.slot():
                    spent.started = time.perf_counter()
                    with observe(spent):
                        result = await run.runtime.arun(recipe, run.inputs, seed=run.seed, budget=run.budget,
                                                        on_token=sink)
        except asyncio.CancelledError:
            self.metrics.observe_cancelled(run.served.name, spent)
            raise
        except TimeoutError:
            self.metrics.run_failures.labels("timeout").inc()
            raise HTTPError(504, f"run of '{run.served.name}' did not finish within {self.config.timeout_s:g}s",
                            type="timeout_error", code="timeout") from None
        except HTTPError:
            raise
        except Exception as exc:  # a failed run becomes a located error answer; the server keeps serving
            error = run_error(exc)
            self.metrics.run_failures.labels(error.code or "run_failed").inc()
            log.warning("run_failed", model=run.served.name, status=error.status, error=error.message)
            raise error from None
        finally:
            ticket.close()
        self.metrics.observe_run(run.served.name, result)
        return result

    async def aclose(self) -> None:
        self.admission.close()
        await self.runtimes.aclose()


def _counted(sink: TokenSink, spent: RunSpend) -> TokenSink:
    def counted(piece: str) -> None:
        spent.piece()
        sink(piece)

    return counted


#: Request fields a recipe honours without an input of that name: the run seed, and a token budget.
RUN_FIELDS = ("seed", "max_tokens")


def honoured_fields(served: ServedRecipe, fields: dict[str, Any], extra: dict[str, Any] | None) -> int | None:
    """Refuse a request field the recipe cannot honour; the run's token budget when ``max_tokens`` needs one.

    Raises:
        UnsupportedParameter: naming the first field no input takes and the run cannot honour.
    """
    for name in unplaced_fields(served.params, fields):
        if name in RUN_FIELDS or (extra and name in extra):
            continue
        wanted = {"tools": "tools-typed input", "response_format": "schema-typed input"}.get(name, f"'{name}' input")
        raise UnsupportedParameter(f"recipe '{served.name}' cannot honour '{name}': it has no {wanted}", param=name)
    declared = {name for name, _ in served.params}
    return fields.get("max_tokens") if "max_tokens" not in declared else None


_STATUS: list[tuple[type[BaseException], int]] = [
    (ContextOverflow, 400),  # the request's text does not fit the model: the client's to shorten
    (BackendTimeout, 504), (BackendError, 502), (SfdslError, 500)]


def run_error(exc: BaseException) -> HTTPError:
    """The error answer for a failed run: sfdsl's message with its location, never a traceback."""
    leaf = _leaf(exc)
    status = next((code for kind, code in _STATUS if isinstance(leaf, kind)), 500)
    if isinstance(leaf, SfdslError):
        code = _snake(type(leaf).__name__)
        message = str(leaf)
    else:
        code, message = "internal_error", f"internal error during the run: {type(leaf).__name__}: {leaf}"
    if isinstance(leaf, ContextOverflow):
        code = "context_length_exceeded"  # OpenAI's code for the same mistake
    extra = {"location": getattr(leaf, "location", None), "node_id": getattr(leaf, "node_id", None)}
    if isinstance(leaf, BudgetExceeded) and isinstance(leaf.partial, dict):
        extra["run_id"] = leaf.partial.get("run_id")
    return HTTPError(status, message, type="server_error" if status >= 500 else "invalid_request_error", code=code,
                     extra=extra)


def _leaf(exc: BaseException) -> BaseException:
    """The first sfdsl error inside (nested) exception groups, else the first exception."""
    while isinstance(exc, BaseExceptionGroup):
        exc = next((e for e in exc.exceptions if isinstance(_leaf(e), SfdslError)), exc.exceptions[0])
    return exc


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
