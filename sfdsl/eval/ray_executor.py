"""Run ``sfrun eval`` items on a Ray cluster: worker actors load their backend once and stream records back."""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfdsl.errors import SfdslError
from sfdsl.eval.data import Item
from sfdsl.eval.glue import Target, Warmup, recipe_target, resolve_models, shared_pool
from sfdsl.eval.runner import EvalSpec, OnRecord, make_record, run_one
from sfdsl.eval.store import ItemRecord
from sfdsl.log import get_logger

log = get_logger("sfdsl.eval.ray")

#: Builds, inside a worker, the Backend or BackendPool its items run on; must pickle (e.g. a functools.partial).
#: None: each recipe's declared models.
MakeBackend = Callable[[], Any] | None


class ExecutorError(SfdslError):
    """Raised when the Ray executor cannot start, or cannot keep enough workers alive."""


def import_ray() -> Any:
    """The ``ray`` module, or an :class:`ExecutorError` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError("--executor ray needs the ray extra: pip install 'sfdsl[ray]'") from exc
    return ray


@dataclass(frozen=True)
class RaySettings:
    """Where and how eval workers run.

    Attributes:
        address: Cluster to join (``auto``, ``HOST:6379``, ``ray://HOST:10001``); None starts a local one.
        workers: Worker actors; None: as many as the cluster's CPUs (GPUs when ``gpus`` > 0) allow.
        cpus: CPUs reserved per worker.
        gpus: GPUs per worker (the embedded engine offloads to them).
        concurrency: Items in flight per worker.
        max_attempts: Tries of one item whose worker died before finishing it.
        max_replacements: Workers started in place of dead ones (None: 2 per worker); once they are
            used up the run goes on with the workers left, and fails when none is left.
    """

    address: str | None = None
    workers: int | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    concurrency: int = 8
    max_attempts: int = 3
    max_replacements: int | None = None

    @staticmethod
    def parse_address(spec: str) -> str | None:
        """``ray`` -> None (a local cluster), ``ray:ADDRESS`` -> ADDRESS.

        Raises:
            ExecutorError: For anything else.
        """
        kind, sep, address = spec.partition(":")
        if kind != "ray" or (sep and not address):
            raise ExecutorError(f"unknown executor {spec!r}; use local, ray or ray:ADDRESS")
        return address or None


class EvalWorker:
    """The body of one Ray actor: one backend for its lifetime, items of any recipe run concurrently."""

    def __init__(
        self, make_backend: MakeBackend, limits: dict[str, Any] | None, setup: Callable[[], None] | None = None
    ) -> None:
        if setup is not None:
            setup()
        self._pool = shared_pool(make_backend() if make_backend else None)
        self._limits = limits
        self._targets: dict[str, tuple[Target, Warmup]] = {}

    async def _target(self, key: str, boxed: list[Any]) -> tuple[Target, Warmup]:
        if key not in self._targets:
            from sfdsl.api import Program

            compiled, name = await boxed[0]  # an ObjectRef, fetched once per recipe
            target = recipe_target(Program(compiled).recipe(name), self._pool, self._limits)
            self._targets.setdefault(key, (target, Warmup(target.run_item)))
        return self._targets[key]

    async def model_ids(self, key: str, boxed: list[Any], item: Item, seed: int) -> str:
        """The recipe's model ids, running ``item`` first if its models are not loaded (it is then replayed)."""
        target, warm = await self._target(key, boxed)
        return await resolve_models(target, self._pool, warm, [item], seed)

    async def run(self, key: str, boxed: list[Any], item: Item, sample: int, spec: EvalSpec) -> ItemRecord:
        """Run and judge one (item, sample); failures come back as records."""
        _, warm = await self._target(key, boxed)
        return await run_one(item, sample, warm, spec, _Quiet())

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    async def aclose(self) -> None:
        """Release the worker's models."""
        await self._pool.aclose()


class _Quiet:
    """A logger that drops events: the driver logs what workers report."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclass(eq=False)
class _Slot:
    actor: Any
    busy: int = 0
    alive: bool = True


@dataclass
class _Flight:
    slot: _Slot
    item: Item
    sample: int
    attempt: int
    ref: Any = field(repr=False)


class RayExecutor:
    """Runs eval items on Ray worker actors; the driver (this process) stores what they stream back.

    Use as ``async with RayExecutor(...) as ray_exec:``, then ``ray_exec.for_target(target)``
    gives the :class:`~sfdsl.eval.runner.Executor` of one recipe. Workers are shared by
    every recipe, so each loads its models once. A worker that dies has its items
    retried on the others and is replaced.

    Args:
        make_backend: Builds each worker's backend (see :data:`MakeBackend`).
        settings: Cluster, worker count and resources.
        limits: Per-item budget (``max_calls``, ``max_tokens``, ``timeout_s``).
        worker_setup: Runs first in each worker, e.g. to configure logging as the driver did.
    """

    def __init__(
        self,
        make_backend: MakeBackend,
        settings: RaySettings,
        *,
        limits: dict[str, Any] | None = None,
        worker_setup: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._make_backend = make_backend
        self._limits = limits
        self._setup = worker_setup
        self._ray: Any = None
        self._owns_session = False
        self._slots: list[_Slot] = []
        self._replacements_left = 0
        self._recipes = 0

    async def __aenter__(self) -> RayExecutor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Join (or start) the cluster and start the workers; waits until each is up.

        Raises:
            ExecutorError: If Ray is missing, the cluster cannot be reached, or a worker fails to start.
        """
        ray = self._ray = import_ray()
        if not ray.is_initialized():
            init = functools.partial(
                ray.init, address=self.settings.address, include_dashboard=False, logging_level="WARNING"
            )
            try:
                if threading.current_thread() is threading.main_thread():
                    init()  # Ray installs its SIGTERM handler only from the main thread
                else:
                    await asyncio.to_thread(init)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"cannot start or join the Ray cluster: {exc}") from exc
            self._owns_session = True
        try:
            count = self._worker_count()
        except ExecutorError:
            await self.aclose()
            raise
        self._slots = [_Slot(self._new_actor()) for _ in range(count)]
        limit = self.settings.max_replacements
        self._replacements_left = 2 * count if limit is None else limit
        try:
            pids = await asyncio.gather(*(_wrap(s.actor.pid.remote()) for s in self._slots))
        except ray.exceptions.RayError as exc:
            await self.aclose()
            raise ExecutorError(f"a Ray eval worker failed to start: {_first_line(exc)}") from exc
        log.info("ray_workers_started", workers=count, pids=pids, address=self.settings.address or "local")

    async def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        return list(await asyncio.gather(*(_wrap(s.actor.pid.remote()) for s in self._slots if s.alive)))

    def for_target(self, target: Target) -> RecipeOnRay:
        """The executor running ``target``'s recipe on these workers.

        Raises:
            ExecutorError: If the target has no compiled recipe to send to the workers.
        """
        if target.recipe is None:
            raise ExecutorError(f"recipe {target.label!r} cannot run on Ray: it has no compiled recipe")
        self._recipes += 1
        portable = (target.recipe.program.compiled, target.recipe.name)  # plain data, unlike a live Program
        return RecipeOnRay(self, f"recipe-{self._recipes}", [self._ray.put(portable)])

    async def aclose(self) -> None:
        """Stop the workers (and the local cluster, if this executor started one)."""
        ray, slots, self._slots = self._ray, self._slots, []
        if ray is None:
            return
        closing = [_wrap(s.actor.aclose.remote()) for s in slots if s.alive]
        await asyncio.gather(*closing, return_exceptions=True)
        for slot in slots:
            ray.kill(slot.actor)
        if self._owns_session:
            await asyncio.to_thread(ray.shutdown)
            self._owns_session = False

    # -- dispatch ------------------------------------------------------------

    def _worker_count(self) -> int:
        """Workers to start: as many as asked, else as the cluster holds; an error if they cannot all fit."""
        total = self._ray.cluster_resources()
        demand = {name: need for name, need in (("CPU", self.settings.cpus), ("GPU", self.settings.gpus)) if need > 0}
        fits = min((int(total.get(name, 0) // need) for name, need in demand.items()), default=1_000_000)
        count = self.settings.workers or max(1, min(fits, int(total.get("CPU", 1))))
        if count > fits:
            want = " + ".join(f"{need:g} {name}" for name, need in demand.items())
            have = ", ".join(f"{total.get(name, 0):g} {name}" for name in demand)
            raise ExecutorError(f"{count} Ray worker(s) of {want} each do not fit the cluster ({have})")
        return count

    def _new_actor(self) -> Any:
        remote = self._ray.remote(EvalWorker).options(
            num_cpus=self.settings.cpus, num_gpus=self.settings.gpus, max_restarts=0
        )
        return remote.remote(self._make_backend, self._limits, self._setup)

    def _replace(self, slot: _Slot, exc: BaseException, logger: Any) -> None:
        """Retire a dead worker's slot and start another in its place."""
        if not slot.alive:
            return
        slot.alive = False
        replace = self._replacements_left > 0
        logger.warning("eval.worker_died", error=_first_line(exc), replaced=replace)
        if replace:
            self._replacements_left -= 1
            self._slots.append(_Slot(self._new_actor()))
        elif not any(s.alive for s in self._slots):
            raise ExecutorError(f"every Ray eval worker died; the last: {_first_line(exc)}") from exc

    async def _dispatch(
        self,
        key: str,
        boxed: list[Any],
        pending: Sequence[tuple[Item, int]],
        spec: EvalSpec,
        on_record: OnRecord,
        logger: Any,
    ) -> None:
        ray = self._ray
        spec_ref = ray.put(spec)
        todo = collections.deque((item, sample, 1) for item, sample in pending)
        flights: dict[asyncio.Future[Any], _Flight] = {}
        try:
            while todo or flights:
                for slot in self._open_slots(len(todo)):  # round-robin, so few items still spread out
                    item, sample, attempt = todo.popleft()
                    ref = slot.actor.run.remote(key, boxed, item, sample, spec_ref)
                    flights[_wrap(ref)] = _Flight(slot, item, sample, attempt, ref)
                    slot.busy += 1
                if not flights:
                    raise ExecutorError("no Ray eval worker is alive")
                done, _ = await asyncio.wait(flights, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    flight = flights.pop(future)
                    flight.slot.busy -= 1
                    try:
                        record = future.result()
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                        self._replace(flight.slot, exc, logger)
                        record = self._retry_or_fail(flight, exc, spec, todo, logger)
                    if record is not None:
                        if record.error is not None:
                            logger.warning(
                                "eval.item_failed", recipe=spec.label, item=record.item_id, sample=record.sample,
                                kind=record.error_kind, error=record.error,
                            )
                        await on_record(record)
                self._slots = [s for s in self._slots if s.alive or s.busy]
        finally:
            for flight in flights.values():
                ray.cancel(flight.ref)

    def _open_slots(self, wanted: int) -> list[_Slot]:
        """Up to ``wanted`` free places on live workers, one per worker per round, first workers first."""
        places: list[_Slot] = []
        free = {id(s): self.settings.concurrency - s.busy for s in self._slots if s.alive}
        while len(places) < wanted and any(n > 0 for n in free.values()):
            for slot in self._slots:
                if free.get(id(slot), 0) > 0 and len(places) < wanted:
                    places.append(slot)
                    free[id(slot)] -= 1
        return places

    def _retry_or_fail(
        self, flight: _Flight, exc: BaseException, spec: EvalSpec, todo: collections.deque[Any], logger: Any
    ) -> ItemRecord | None:
        """Requeue an item whose worker died, or record it as failed once it used its attempts."""
        if flight.attempt < self.settings.max_attempts:
            logger.info("eval.item_retried", recipe=spec.label, item=flight.item.item_id, attempt=flight.attempt + 1)
            todo.appendleft((flight.item, flight.sample, flight.attempt + 1))
            return None
        error = f"its worker died {flight.attempt} times: {_first_line(exc)}"
        item, sample = flight.item, flight.sample
        return make_record(
            item, sample, spec.seed + sample, None, spec, wall_s=0.0, error=error, error_kind="WorkerDied"
        )


class RecipeOnRay:
    """The :class:`~sfdsl.eval.runner.Executor` of one recipe on a :class:`RayExecutor`'s workers."""

    def __init__(self, owner: RayExecutor, key: str, boxed: list[Any]) -> None:
        self._owner, self._key, self._boxed = owner, key, boxed

    async def model_ids(self, items: Sequence[Item], seed: int) -> str:
        """The recipe's model ids, as a worker resolves them (loading its models on the first item)."""
        if not items:
            return ""
        slot = next(s for s in self._owner._slots if s.alive)
        return str(await _wrap(slot.actor.model_ids.remote(self._key, self._boxed, items[0], seed)))

    async def run(
        self, pending: Sequence[tuple[Item, int]], spec: EvalSpec, on_record: OnRecord, logger: Any
    ) -> None:
        await self._owner._dispatch(self._key, self._boxed, pending, spec, on_record, logger)


def _wrap(ref: Any) -> asyncio.Future[Any]:
    """An ObjectRef as an asyncio future of the current loop."""
    return asyncio.wrap_future(ref.future())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
