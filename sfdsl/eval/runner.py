"""The concurrent, resumable evaluation loop and its progress display."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

import structlog

from sfdsl.errors import BudgetExceeded
from sfdsl.eval.data import Item
from sfdsl.eval.metrics import Matcher
from sfdsl.eval.store import ItemRecord, ResultStore
from sfdsl.log import get_logger
from sfdsl.runtime.results import Cost, RunResult

log = get_logger("sfdsl.eval")

#: Runs one item: ``await run_item(inputs, seed) -> RunResult``.
RunItem = Callable[[dict[str, Any], int], Awaitable["RunResult"]]

#: Receives each finished record: ``await on_record(record)``.
OnRecord = Callable[[ItemRecord], Awaitable[None]]


def make_run_key(**parts: Any) -> str:
    """Hash everything that determines a run's results (recipe fingerprint, model ids, fixed inputs, metric...)."""
    blob = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class EvalSpec:
    """How to judge one recipe's results.

    Attributes:
        run_key: Identity of the run in the store (see :func:`make_run_key`).
        label: Display name of the recipe.
        matcher: Correctness function ``(prediction, gold) -> bool``.
        first_key: Output key holding a first-turn answer (two-turn recipes).
        samples: Samples per item; sample ``s`` runs with seed ``seed + s``.
        seed: Base seed.
        item_timeout: Seconds allowed per item (None: no limit).
    """

    run_key: str
    label: str
    matcher: Matcher
    first_key: str | None = "first"
    samples: int = 1
    seed: int = 0
    item_timeout: float | None = None


@dataclass
class EvalOutcome:
    """What :func:`run_eval` did: the run's records plus counts of new and resumed ones."""

    records: list[ItemRecord]
    new: int
    resumed: int


class Progress(Protocol):
    """Receives progress events from :func:`run_eval`."""

    def start(self, label: str, total: int, done: int) -> None: ...

    def update(self, record: ItemRecord) -> None: ...

    def finish(self) -> None: ...


@runtime_checkable
class Executor(Protocol):
    """Where an eval's items run: in this event loop (:class:`LocalExecutor`) or elsewhere (e.g. Ray).

    Contract: :meth:`run` ends every ``(item, sample)`` given in exactly one
    ``await on_record(record)`` call, in any order (an item that fails is a
    record carrying its error), or raises. Records should be built with
    :func:`run_one` so they are judged the same wherever they ran.
    """

    async def run(
        self, pending: Sequence[tuple[Item, int]], spec: EvalSpec, on_record: OnRecord, logger: Any
    ) -> None: ...


class LocalExecutor:
    """Runs items in the current event loop, ``concurrency`` at a time, in one TaskGroup."""

    def __init__(self, run_item: RunItem, concurrency: int = 8) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.run_item, self.concurrency = run_item, concurrency

    async def run(
        self, pending: Sequence[tuple[Item, int]], spec: EvalSpec, on_record: OnRecord, logger: Any
    ) -> None:
        queue: Iterator[tuple[Item, int]] = iter(pending)

        async def worker() -> None:
            for item, sample in queue:
                await on_record(await run_one(item, sample, self.run_item, spec, logger))

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.concurrency, len(pending))):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise


async def run_eval(
    items: Sequence[Item],
    run: RunItem | Executor,
    spec: EvalSpec,
    *,
    store: ResultStore,
    concurrency: int = 8,
    progress: Progress | None = None,
    logger: Any = None,
) -> EvalOutcome:
    """Run every (item, sample) not yet in the store and store each record as it finishes.

    Each finished item is durably written before its worker takes the next
    one, so a killed run loses only items in flight. An item's failure is
    recorded with its reason and counts as incorrect; the run goes on.

    Args:
        items: The dataset items.
        run: An async callable running the recipe on one item's inputs (run
            here by a :class:`LocalExecutor`, ``concurrency`` items in flight,
            letting the engine batch across items), or an :class:`Executor`.
        spec: Run identity and judging rules.
        store: Results store.
        concurrency: Maximum items in flight (for a callable ``run``).
        progress: Optional progress sink.
        logger: structlog logger for events (default: the ``sfdsl.eval`` logger).

    Returns:
        The records for exactly these items and samples, new and resumed.
    """
    executor = run if isinstance(run, Executor) else LocalExecutor(run, concurrency)
    logger = logger or log
    wanted = [(item, s) for item in items for s in range(spec.samples)]
    done = await asyncio.to_thread(store.done, spec.run_key)
    pending = [(item, s) for item, s in wanted if (item.key, s) not in done]
    resumed = len(wanted) - len(pending)
    logger.info("eval.start", recipe=spec.label, total=len(wanted), resumed=resumed, concurrency=concurrency)
    if progress:
        progress.start(spec.label, len(wanted), resumed)
    new = 0

    async def on_record(record: ItemRecord) -> None:
        nonlocal new
        if await asyncio.to_thread(store.add, record):
            new += 1
        if progress:
            progress.update(record)

    try:
        if pending:
            await executor.run(pending, spec, on_record, logger)
    finally:
        if progress:
            progress.finish()
    keys = {(item.key, s) for item, s in wanted}
    records = await asyncio.to_thread(store.records, spec.run_key, keys)
    logger.info("eval.done", recipe=spec.label, new=new, resumed=resumed, records=len(records))
    return EvalOutcome(records=records, new=new, resumed=resumed)


async def run_one(item: Item, sample: int, run_item: RunItem, spec: EvalSpec, logger: Any) -> ItemRecord:
    """Run one (item, sample) and judge it; a failure becomes a record with its error, never an exception."""
    seed = spec.seed + sample
    result: Any = None
    error: str | None = None
    kind: str | None = None
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(spec.item_timeout):
            result = await run_item(dict(item.inputs), seed)
        if getattr(result, "error", None):
            error, kind = str(result.error), "RunError"
    except BudgetExceeded as exc:
        result, error, kind = _stopped_result(exc, spec.label), f"stopped: {exc}", "BudgetExceeded"
    except TimeoutError:
        error, kind = f"item timed out after {spec.item_timeout}s", "Timeout"
    except Exception as exc:
        error, kind = str(exc) or type(exc).__name__, type(exc).__name__
    wall = time.perf_counter() - t0
    cost = getattr(result, "cost", None)
    if error is None and cost is not None and getattr(cost, "wall_s", 0.0) > wall:
        wall = cost.wall_s  # a result replayed from an earlier run (the model warm-up) keeps its own time
    if error is not None:
        logger.warning("eval.item_failed", recipe=spec.label, item=item.item_id, sample=sample, kind=kind, error=error)
    return make_record(item, sample, seed, result, spec, wall_s=wall, error=error, error_kind=kind)


def _stopped_result(exc: BudgetExceeded, recipe: str) -> Any:
    """A budget-stopped run as a result with no answer but its true cost."""
    if hasattr(exc.partial, "cost"):
        return exc.partial
    partial = exc.partial if isinstance(exc.partial, dict) else {}
    return RunResult(run_id=str(partial.get("run_id", "")), recipe=recipe,
                     cost=Cost.model_validate(partial.get("cost") or {}))


def make_record(
    item: Item,
    sample: int,
    seed: int,
    result: Any,
    spec: EvalSpec,
    *,
    wall_s: float,
    error: str | None = None,
    error_kind: str | None = None,
) -> ItemRecord:
    """Judge one run result against the gold answer and build its store record.

    ``result`` may be a RunResult, a partial one (budget exceeded) or None.
    """
    has = result is not None and hasattr(result, "cost")
    answer = result.answer if has else None
    outputs = dict(result.outputs or {}) if has else {}
    abstained = bool(result.abstained) if has else False
    score = result.score if has else None
    answer_correct = error is None and spec.matcher(answer, item.gold)
    first_correct = None
    if error is None and spec.first_key and spec.first_key in outputs:
        first_correct = spec.matcher(outputs[spec.first_key], item.gold)
    cost = result.cost if has else None
    return ItemRecord(
        run_key=spec.run_key,
        item_key=item.key,
        sample=sample,
        item_id=item.item_id,
        item_index=item.index,
        recipe=spec.label,
        inputs=item.inputs,
        gold=item.gold,
        answer=answer,
        outputs=outputs,
        correct=answer_correct and not abstained,
        answer_correct=answer_correct,
        first_correct=first_correct,
        score=float(score) if isinstance(score, (int, float)) else None,
        abstained=abstained,
        calls=cost.calls if cost else 0,
        prompt_tokens=cost.prompt_tokens if cost else 0,
        completion_tokens=cost.completion_tokens if cost else 0,
        cached_calls=cost.cached_calls if cost else 0,
        wall_s=wall_s,
        seed=seed,
        error=error,
        error_kind=error_kind,
    )


class _Stats:
    """Running counts behind both progress displays."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.start_done = total, done, done
        self.correct = self.tokens = self.failed = 0
        self.t0 = time.monotonic()

    def add(self, r: ItemRecord) -> None:
        self.done += 1
        self.correct += r.correct
        self.tokens += r.tokens
        self.failed += r.error is not None

    @property
    def fresh(self) -> int:
        return self.done - self.start_done

    @property
    def rate(self) -> float:
        dt = time.monotonic() - self.t0
        return self.fresh / dt if dt > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.fresh if self.fresh else None


class LogProgress:
    """Plain progress: one structlog line every ``every`` items or ``interval_s`` seconds."""

    def __init__(self, every: int | None = None, interval_s: float = 10.0, logger: Any = None) -> None:
        self._every, self._interval, self._log = every, interval_s, logger or log
        self._stats: _Stats | None = None
        self._label, self._last = "", 0.0

    def start(self, label: str, total: int, done: int) -> None:
        self._stats, self._label, self._last = _Stats(total, done), label, time.monotonic()
        self._n = self._every or max(1, (total - done) // 10)

    def update(self, record: ItemRecord) -> None:
        s = self._stats
        assert s is not None
        s.add(record)
        now = time.monotonic()
        if s.fresh % self._n == 0 or now - self._last >= self._interval or s.done == s.total:
            self._last = now
            self._emit(s)

    def _emit(self, s: _Stats) -> None:
        self._log.info(
            "eval.progress",
            recipe=self._label,
            done=s.done,
            total=s.total,
            items_per_s=round(s.rate, 2),
            eta_s=None if s.eta_s is None else round(s.eta_s, 1),
            accuracy=None if s.accuracy is None else round(s.accuracy, 4),
            tokens=s.tokens,
            failed=s.failed,
        )

    def finish(self) -> None:
        self._stats = None


class RichProgress:
    """A rich progress bar on a terminal: items/s, ETA, running accuracy and tokens."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console

        self._console = Console(file=stream or sys.stderr)
        self._bar: Any = None
        self._task: Any = None
        self._stats: _Stats | None = None

    def start(self, label: str, total: int, done: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._stats = _Stats(total, done)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self._console,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, completed=done, rate="", info="")

    def update(self, record: ItemRecord) -> None:
        s = self._stats
        assert s is not None
        s.add(record)
        acc = "-" if s.accuracy is None else f"{s.accuracy:.1%}"
        info = f"acc {acc}  tok {s.tokens:,}" + (f"  failed {s.failed}" if s.failed else "")
        self._bar.update(self._task, completed=s.done, rate=f"{s.rate:.2f} it/s", info=info)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def make_progress(stream: IO[str] | None = None, *, every: int | None = None, logger: Any = None) -> Progress:
    """A rich bar when ``stream`` (default stderr) is a terminal, else periodic log lines."""
    stream = stream or sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        return RichProgress(stream)
    return LogProgress(every=every, logger=logger)


def stderr_logger() -> Any:
    """A logger for progress lines on stderr (stdout is for tables), whatever level the event log is filtered at."""
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
