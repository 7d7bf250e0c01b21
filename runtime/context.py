"""Per-run state: budget, cost accounting, step records, seeds and the event trace."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sfdsl.errors import BudgetExceeded, InputError
from sfdsl.log import get_logger
from sfdsl.runtime.results import Cost, StepRecord
from sfdsl.runtime.token_stream import TokenSink

log = get_logger(__name__)
#: Seconds of one event-loop iteration a run may use before its steps yield (see RunContext.checkpoint).
SLICE_S = 0.01
#: Step records a partial result keeps (the last ones): dumping more would hold the loop at the worst time.
PARTIAL_STEPS = 1000
#: Parked steps a run lets go on per event-loop iteration.
WAKE = 16
DEBUG_EVENTS = frozenset({"node_started", "node_finished", "backend_called", "recipe_called", "vote_decided"})

#: Called with (event, fields) for every trace event of runs started in the current context.
Listener = Callable[[str, dict[str, Any]], None]
_listener: ContextVar[Listener | None] = ContextVar("sfdsl_trace_listener", default=None)


@contextmanager
def observe(listener: Listener) -> Iterator[None]:
    """Pass every trace event of the runs started inside this block to ``listener`` (e.g. to stream progress).

    The listener is held in a context variable, so it reaches the run's tasks and nothing else.
    """
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


class Budget(BaseModel):
    """Limits of one run; None means unlimited.

    Raises:
        InputError: for a negative, zero, NaN or infinite limit.
    """

    model_config = ConfigDict(frozen=True)

    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    #: Bytes of values (generated text, search states, loop bodies) one run may create; see RunContext.hold.
    max_memory_bytes: int | None = Field(default=None, ge=1)

    def __init__(self, **limits: Any) -> None:
        try:
            super().__init__(**limits)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))} {e['msg'].removeprefix('Input ')} "
                                 f"(got {e.get('input')!r})" for e in exc.errors())
            raise InputError(f"bad budget: {problems}; leave a limit out for no limit") from None


class Trace:
    """Emits structlog events and, when a path is given, appends them as JSON lines."""

    def __init__(self, path: str | Path | None, *, run_id: str) -> None:
        self.run_id = run_id
        self._file: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def emit(self, event: str, **fields: Any) -> None:
        """Log an event (per-node and per-call events at debug level) and append it to the trace file."""
        level = "debug" if event in DEBUG_EVENTS else "info"
        getattr(log, level)(event, run_id=self.run_id, **fields)
        listener = _listener.get()
        if listener is not None:
            listener(event, {"run_id": self.run_id, **fields})
        if self._file is not None:
            record = {"event": event, "run_id": self.run_id, "ts": time.time(), **fields}
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RunContext:
    """What every node of one run shares."""

    def __init__(self, *, run_id: str, seed: int, budget: Budget, trace: Trace,
                 token_sink: TokenSink | None = None, streamed: Any = None) -> None:
        self.run_id = run_id
        self.seed = seed
        self.budget = budget
        self.trace = trace
        self.cost = Cost()
        self.steps: list[StepRecord] = []
        self.started = time.perf_counter()
        self._calls_held = 0
        self._tokens_held = 0
        self.token_sink = token_sink  # receives the text of the `streamed` generate node, as it decodes
        self.streamed = streamed
        self._truncated: set[tuple[str, ...]] = set()
        self.held_bytes = 0
        self._slice_started: float | None = None
        self._tick_pending = False
        self._parked: deque[asyncio.Future[None]] = deque()

    def mark_truncated(self, path: tuple[str, ...]) -> None:
        """Record that the step at ``path`` kept a generation that its token limit cut short."""
        self._truncated.add(path)

    def truncated_under(self, path: tuple[str, ...]) -> bool:
        """Whether a generation cut short by its token limit ran at ``path`` or inside it (a loop, a call)."""
        return any(p[: len(path)] == path for p in self._truncated)

    def derive_seed(self, path: tuple[str, ...]) -> int:
        """A deterministic per-call seed from the run seed and the node's path."""
        digest = hashlib.sha256(("/".join(path) + f"|{self.seed}").encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def before_call(self, what: str) -> None:
        """Refuse a model call that would break the calls budget."""
        limit = self.budget.max_calls
        if limit is not None and self.cost.calls + self._calls_held >= limit:
            raise BudgetExceeded(f"calls budget exhausted ({limit} calls) before {what}", partial=self.partial())

    @contextmanager
    def call_slot(self, what: str, *, n: int = 1, max_tokens: int = 0) -> Iterator[int]:
        """Hold one model call within the budget while it runs; yields its ``max_tokens``, capped.

        Calls and tokens in flight are reserved, so concurrent calls together
        can never exceed the calls budget or generate past the token budget:
        each sample's ``max_tokens`` is cut to its share of the tokens left.

        Raises:
            BudgetExceeded: when no call, or not one token per sample, is left.
        """
        self.before_call(what)
        tokens = self.budget.max_tokens
        capped = max_tokens
        if tokens is not None and max_tokens > 0:
            left = tokens - self.cost.completion_tokens - self._tokens_held
            capped = min(max_tokens, left // max(1, n))
            if capped < 1:
                raise BudgetExceeded(
                    f"token budget exhausted ({tokens} generated tokens, {max(0, left)} left for {n} "
                    f"sample{'s' if n != 1 else ''}) before {what}", partial=self.partial())
            if capped < max_tokens:
                self.trace.emit("max_tokens_capped", step=what, asked=max_tokens, capped=capped)
        self._calls_held += 1
        self._tokens_held += capped * n
        try:
            yield capped
        finally:
            self._calls_held -= 1
            self._tokens_held -= capped * n

    def charge(
        self, *, calls: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0, cached: bool = False,
        requests: int | None = None, cached_prompt_tokens: int = 0,
    ) -> Cost:
        """Account for one backend call (``requests`` sent: one per call unless told); raise past the token budget.

        Calls are capped beforehand (``call_slot``), so this raises only if a backend generated past it anyway.
        """
        sent = (0 if cached else calls) if requests is None else requests
        step = Cost(calls=calls, requests=sent, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    cached_calls=calls if cached else 0, cached_prompt_tokens=cached_prompt_tokens)
        self.cost.add(step)
        limit = self.budget.max_tokens
        if limit is not None and self.cost.completion_tokens > limit:
            raise BudgetExceeded(
                f"token budget exceeded ({self.cost.completion_tokens} > {limit} generated tokens)",
                partial=self.partial(),
            )
        return step

    async def checkpoint(self) -> None:
        """Wait for the next event-loop iteration once this run has used ``SLICE_S`` of the current one.

        asyncio checks timers and sockets only between iterations, and one iteration runs every task
        that is ready: many steps that never wait (a fast or cached backend) would hold the loop, and
        with it ``/health`` and the run's own timeout. Steps call this before they start. Past the
        slice a step parks on a future (costing nothing while it waits); each iteration wakes at most
        ``WAKE`` parked steps, so an iteration ends within about ``SLICE_S`` and a timeout lands on time.
        """
        while True:
            now = time.perf_counter()
            if self._slice_started is None:
                self._slice_started = now
                self._arm()
                return
            if now - self._slice_started <= SLICE_S:
                return
            parked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._parked.append(parked)
            self._arm()
            await parked

    def _arm(self) -> None:
        if not self._tick_pending:
            self._tick_pending = True
            asyncio.get_running_loop().call_soon(self._tick)  # runs at the start of the next iteration

    def _tick(self) -> None:
        """A new loop iteration: a new slice, and the next parked steps may go on."""
        self._tick_pending = False
        self._slice_started = None
        woken = 0
        while self._parked and woken < WAKE:
            parked = self._parked.popleft()
            if not parked.done():  # a cancelled step left its future behind
                parked.set_result(None)
                woken += 1
        if self._parked:
            self._arm()

    def hold(self, nbytes: int, what: str) -> None:
        """Count ``nbytes`` of values the run creates; past ``budget.max_memory_bytes``, stop the run.

        The count only grows (values a run creates, not what is still alive), so it is a ceiling that
        turns runaway growth into an error at the step that crossed it, without tracemalloc.

        Raises:
            BudgetExceeded: when the run's values pass the memory ceiling.
        """
        self.held_bytes += nbytes
        limit = self.budget.max_memory_bytes
        if limit is not None and self.held_bytes > limit:
            raise BudgetExceeded(f"memory ceiling of {limit} bytes passed at {what} "
                                 f"({self.held_bytes} bytes of values created)", partial=self.partial("memory"))

    def partial(self, stopped: str = "budget") -> dict[str, Any]:
        """What has been computed so far, for errors that abort the run; ``stopped`` says why."""
        cost = self.cost.model_copy(update={"wall_s": self.elapsed()})
        return {
            "run_id": self.run_id,
            "stopped": stopped,
            "cost": cost.model_dump(),
            "steps": [s.model_dump(mode="json") for s in self.steps[-PARTIAL_STEPS:]],
            "steps_total": len(self.steps),
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
