"""An event loop on its own thread, so sync and async callers from any thread share one set of loaded models.

Coroutines submitted from any thread run on this one loop, in the caller's
context (contextvars, so OpenTelemetry spans nest under the caller's span);
cancelling the returned future cancels the task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs an asyncio loop on a daemon thread until ``close()``."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop in a copy of the caller's context; its outcome lands in the future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if not self.running:
            coro.close()
            raise RuntimeError("the sfdsl loop thread is closed")

        def start() -> None:
            if future.cancelled():
                coro.close()
                return
            task = self.loop.create_task(coro)  # copies the current context: the caller's, see below
            task.add_done_callback(lambda done: _settle(future, done))
            future.add_done_callback(lambda f: self.loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)

        self.loop.call_soon_threadsafe(start, context=contextvars.copy_context())
        return future

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for it (from a thread other than the loop's)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop; await the coroutine instead")
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` running on the loop without blocking the caller's loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self, final: Coroutine[Any, Any, Any] | None = None, *, timeout: float = 30.0) -> None:
        """Run ``final`` (e.g. closing backends), then stop the loop and join the thread. Idempotent."""
        if not self.running:
            if final is not None:
                final.close()
            return
        try:
            if final is not None:
                self.submit(final).result(timeout=timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if threading.current_thread() is not self._thread:
                self._thread.join(timeout=timeout)


def _settle(future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    if future.cancelled():
        return
    try:
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())
    except concurrent.futures.InvalidStateError:  # cancelled by the caller meanwhile
        pass
