"""Per-run state: budget, cost accounting, step records, seeds and the event trace."""

from __future__ import annotations

import hashlib
import json
import time
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

    def partial(self, stopped: str = "budget") -> dict[str, Any]:
        """What has been computed so far, for errors that abort the run; ``stopped`` says why."""
        cost = self.cost.model_copy(update={"wall_s": self.elapsed()})
        return {
            "run_id": self.run_id,
            "stopped": stopped,
            "cost": cost.model_dump(),
            "steps": [s.model_dump(mode="json") for s in self.steps],
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
