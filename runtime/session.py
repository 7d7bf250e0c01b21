"""sfdsl.Runtime: the explicit lifecycle of loaded models, shared by every run of a program, sync or async.

A Runtime owns a BackendPool, so each model loads once and serves every run
until the runtime closes. Async runs execute in the caller's event loop; sync
runs execute on a private event loop on one background thread (a portal), so
consecutive ``Recipe.run`` calls reuse the models too. A runtime closes on
``close()``/``aclose()``, at the end of its ``with``/``async with`` block, when
it is garbage-collected, or at interpreter exit.

Example:
    >>> import sfdsl
    >>> recipe = sfdsl.load("recipes/self_consistency.sf").recipe()   # doctest: +SKIP
    >>> with sfdsl.Runtime(model="default") as rt:                     # doctest: +SKIP
    ...     first = recipe.run(question="2 + 3?", runtime=rt)          # loads the model
    ...     second = recipe.run(question="4 + 5?", runtime=rt)         # reuses it
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sfdsl.errors import EventLoopError, InputError, RuntimeClosed
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.pool import BackendPool, pool_from_spec

if TYPE_CHECKING:
    from sfdsl.runtime.results import RunResult

T = TypeVar("T")


class Runnable(Protocol):
    """What a runtime runs: a recipe (``sfdsl.api.Recipe``), named by its ``arun`` alone so this module and
    the API do not import each other."""

    async def arun(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult: ...


def loop_running() -> bool:
    """Whether this thread has a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def refuse_running_loop(what: str) -> None:
    """Raise EventLoopError when called from a thread whose event loop is running (a sync call would block it)."""
    if not loop_running():
        return
    instead = what.replace(".run(", ".arun(").replace(".call(", ".arun(").replace(".close(", ".aclose(")
    raise EventLoopError(f"{what} cannot be called from a running event loop (it would block it); "
                         f"use `await {instead}` there")


class _Portal:
    """A private event loop running on one daemon thread; sync callers submit coroutines and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sfdsl-runtime", daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal loop and wait; an interrupt of the waiting thread cancels it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs, shut the loop's executor down, stop the thread and close the loop."""
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(_drain(), self.loop).result()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
        self.loop.close()


async def _drain() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


@dataclass
class _Resources:
    """What a runtime must release; held apart from the Runtime so its finalizer does not keep it alive."""

    pool: BackendPool
    portal: _Portal | None = None
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ensure_portal(self) -> _Portal:
        """The private loop, started by the first sync call (once, whichever threads call at the same time)."""
        with self.lock:
            if self.closed:
                raise RuntimeClosed("this sfdsl.Runtime is closed; create a new one")
            if self.portal is None:
                self.portal = _Portal()
            return self.portal

    def release(self) -> None:
        """Close the pool's backends and stop the portal, from a thread without a running loop."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.portal is not None:
            self._release_portal(self.portal)
            return
        # Never used synchronously: close on a short-lived thread, whatever loop the caller runs.
        errors: list[BaseException] = []
        worker = threading.Thread(target=_close_pool, args=(self.pool, errors), name="sfdsl-runtime-close")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]

    async def arelease(self) -> None:
        """Close the backends on the loop that created them, without blocking the running loop."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        if self.portal is not None:
            await asyncio.to_thread(self._release_portal, self.portal)
        else:
            await self.pool.aclose()

    def _release_portal(self, portal: _Portal) -> None:
        try:
            portal.call(self.pool.aclose())
        finally:
            portal.stop()


def _close_pool(pool: BackendPool, errors: list[BaseException]) -> None:
    try:
        asyncio.run(pool.aclose())
    except BaseException as exc:  # re-raised by the thread that asked for the close
        errors.append(exc)


def _release_unreferenced(resources: _Resources) -> None:
    """Finalizer of a Runtime: collected, or still open at interpreter exit.

    Garbage collection may run on the runtime's own loop thread or in a thread
    whose event loop is running; there the release moves to a new thread, so it
    neither deadlocks nor blocks that loop. Elsewhere (at exit) it completes here.
    """
    portal = resources.portal
    on_portal = portal is not None and threading.current_thread() is portal.thread
    if on_portal or loop_running():
        threading.Thread(target=_quiet_release, args=(resources,), name="sfdsl-runtime-release").start()
    else:
        _quiet_release(resources)


def _quiet_release(resources: _Resources) -> None:
    with contextlib.suppress(Exception):  # best effort: nobody is left to report a failure to
        resources.release()


class Runtime:
    """Loaded models and the means to run recipes on them; close it to free the models.

    Args:
        backend: one backend for every model declaration: an instance (e.g. a ScriptedBackend; the caller closes
            it), or a ``--backend`` spec string such as ``"openai:http://host:8000/v1"``, ``"llama:MODEL"`` or
            ``"scripted:replies.json"`` (the runtime builds and closes what it names).
        model: a GGUF file or alias overriding the model of every llama declaration.
        cache: True for the on-disk cache at its default path, or a path to a SQLite cache file.
        pool: an existing BackendPool to own instead (then give none of the above).
    """

    def __init__(self, *, backend: Backend | str | None = None, model: str | None = None,
                 cache: bool | str | Path = False, pool: BackendPool | None = None) -> None:
        if pool is not None and (backend is not None or model is not None or cache):
            raise InputError("give sfdsl.Runtime either pool= or backend=/model=/cache=, not both")
        if isinstance(backend, str):
            pool = pool_from_spec(backend, model=model, wrap=_cache_wrapper(cache))
        elif pool is None:
            pool = BackendPool(backend=backend, model=model, wrap=_cache_wrapper(cache))
        self._resources = _Resources(pool)
        self._finalizer = weakref.finalize(self, _release_unreferenced, self._resources)

    @property
    def pool(self) -> BackendPool:
        """The backend pool every run of this runtime shares."""
        self._check_open()
        return self._resources.pool

    @property
    def closed(self) -> bool:
        return self._resources.closed

    async def arun(self, recipe: Runnable, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
        """Run a recipe in the current event loop on this runtime's models (see ``Recipe.arun``)."""
        return await recipe.arun(inputs, runtime=self, **kwargs)

    def run(self, recipe: Runnable, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
        """Run a recipe synchronously on this runtime's private loop (see ``Recipe.run``).

        Raises:
            EventLoopError: when called from a running event loop; ``await runtime.arun(...)`` there.
        """
        refuse_running_loop("recipe.run(...)")
        return self.call(recipe.arun(inputs, runtime=self, **kwargs))

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion on this runtime's private loop, from sync code."""
        try:
            refuse_running_loop("runtime.call(...)")
            self._check_open()
        except BaseException:
            coro.close()
            raise
        try:
            portal = self._resources.ensure_portal()
        except BaseException:
            coro.close()
            raise
        return portal.call(coro)

    def close(self) -> None:
        """Free the models and stop the private loop; idempotent.

        Raises:
            EventLoopError: when called from a running event loop; ``await runtime.aclose()`` there.
        """
        if self.closed:
            return
        refuse_running_loop("runtime.close()")
        self._finalizer.detach()
        self._resources.release()

    async def aclose(self) -> None:
        """Free the models without blocking the running loop; idempotent."""
        if self.closed:
            return
        self._finalizer.detach()
        await self._resources.arelease()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._resources.closed:
            raise RuntimeClosed("this sfdsl.Runtime is closed; create a new one")


def _cache_wrapper(cache: bool | str | Path) -> Any:
    if cache is False or cache is None:
        return None
    from sfdsl.runtime.cache import CachedBackend

    path = None if cache is True else Path(cache)

    def wrap(backend: Backend) -> Backend:
        return CachedBackend(backend, path=path)

    return wrap
