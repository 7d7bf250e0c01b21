"""Per-run state: budget, cost accounting, step records, seeds and the event trace."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from sfdsl.errors import BudgetExceeded
from sfdsl.log import get_logger
from sfdsl.runtime.results import Cost, StepRecord

log = get_logger(__name__)
DEBUG_EVENTS = frozenset({"node_started", "node_finished", "backend_called", "recipe_called", "vote_decided"})


class Budget(BaseModel):
    """Limits of one run; None means unlimited."""

    max_calls: int | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None


class Trace:
    """Emits structlog events and, when a path is given, appends them as JSON lines."""

    def __init__(self, path: str | Path | None, *, run_id: str) -> None:
        self.run_id = run_id
        self._file: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def emit(self, event: str, **fields: Any) -> None:
        """Log an event (per-node and per-call events at debug level) and append it to the trace file."""
        level = "debug" if event in DEBUG_EVENTS else "info"
        getattr(log, level)(event, run_id=self.run_id, **fields)
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

    def __init__(self, *, run_id: str, seed: int, budget: Budget, trace: Trace) -> None:
        self.run_id = run_id
        self.seed = seed
        self.budget = budget
        self.trace = trace
        self.cost = Cost()
        self.steps: list[StepRecord] = []
        self.started = time.perf_counter()

    def derive_seed(self, path: tuple[str, ...]) -> int:
        """A deterministic per-call seed from the run seed and the node's path."""
        digest = hashlib.sha256(("/".join(path) + f"|{self.seed}").encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def before_call(self, what: str) -> None:
        """Refuse a model call that would break the calls budget."""
        limit = self.budget.max_calls
        if limit is not None and self.cost.calls >= limit:
            raise BudgetExceeded(f"calls budget exhausted ({limit} calls) before {what}", partial=self.partial())

    def charge(
        self, *, calls: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0, cached: bool = False,
        requests: int | None = None,
    ) -> Cost:
        """Account for one backend call (``requests`` sent: one per call unless told); raise past the token budget."""
        sent = (0 if cached else calls) if requests is None else requests
        step = Cost(calls=calls, requests=sent, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    cached_calls=calls if cached else 0)
        self.cost.add(step)
        limit = self.budget.max_tokens
        if limit is not None and self.cost.completion_tokens > limit:
            raise BudgetExceeded(
                f"token budget exceeded ({self.cost.completion_tokens} > {limit} generated tokens)",
                partial=self.partial(),
            )
        return step

    def partial(self) -> dict[str, Any]:
        """What has been computed so far, for errors that abort the run."""
        return {
            "run_id": self.run_id,
            "cost": self.cost.model_dump(),
            "steps": [s.model_dump(mode="json") for s in self.steps],
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.started
