"""The OS thread that runs llama engines: one per engine, or one shared by every CPU engine of a pool.

llama-cpp-python's OpenMP build gives each OS thread that calls ``llama_decode``
its own worker team. Once two teams exist in a process, libgomp counts more
threads than cores and stops spin-waiting at its barriers, and every decode
slows: on a 2-core CPU an engine at 57–74 tok/s (one sequence) fell to 26 while
a second model's engine lived beside it. Engines created inside
:func:`shared_decode_thread` (a :class:`BackendPool` does this) therefore step
in turn on one thread; each engine still has its own model, context and queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from sfdsl.log import get_logger

__all__ = ["DecodeThread", "Steppable", "current_decode_thread", "shared_decode_thread"]

log = get_logger(__name__)
_ATTACH = object()
_STOP = object()
_SCOPE: ContextVar[DecodeThread | None] = ContextVar("sfdsl_decode_thread", default=None)


class Steppable(Protocol):
    """What a :class:`DecodeThread` drives (the engine)."""

    @property
    def has_work(self) -> bool: ...

    def enqueue(self, job: Any) -> None:
        """Take a submitted job (on the decode thread)."""

    def tick(self) -> bool:
        """Admit and decode one step; False when the engine crashed and stopped itself."""

    def stop(self) -> None:
        """Fail what is left, free the model (on the decode thread)."""


class DecodeThread:
    """One daemon thread stepping its engines round-robin; it exits when its last engine stops."""

    def __init__(self, name: str = "sfdsl-llama") -> None:
        self.name = name
        self._inbox: queue.SimpleQueue[tuple[Steppable, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._attached = 0
        self._thread: threading.Thread | None = None

    def attach(self, engine: Steppable) -> None:
        """Start stepping ``engine`` (starting the thread when none runs)."""
        with self._lock:
            self._attached += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._inbox.put((engine, _ATTACH))

    def post(self, engine: Steppable, job: Any) -> None:
        """Hand ``engine`` a job; it runs on this thread's next turn."""
        self._inbox.put((engine, job))

    def detach(self, engine: Steppable) -> None:
        """Ask the thread to stop ``engine`` (its :meth:`Steppable.stop` runs there)."""
        self._inbox.put((engine, _STOP))

    def _run(self) -> None:
        engines: list[Steppable] = []
        while self._take(engines, block=not any(e.has_work for e in engines)):
            for engine in [e for e in engines if e.has_work]:
                if not engine.tick():
                    engines.remove(engine)
                    self._forget()

    def _take(self, engines: list[Steppable], *, block: bool) -> bool:
        """Apply what was posted; False once no engine is attached (the thread then ends)."""
        try:
            engine, item = self._inbox.get() if block else self._inbox.get_nowait()
            while True:
                if item is _ATTACH:
                    engines.append(engine)
                elif item is _STOP:
                    if engine in engines:
                        engines.remove(engine)
                        self._forget()
                    self._stop(engine)
                else:
                    engine.enqueue(item)
                engine, item = self._inbox.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._attached == 0 and self._inbox.empty():
                self._thread = None
                return False
        return True

    @staticmethod
    def _stop(engine: Steppable) -> None:
        try:
            engine.stop()
        except Exception:  # the other engines on this thread go on
            log.exception("engine_stop_failed")

    def _forget(self) -> None:
        with self._lock:
            self._attached -= 1


def current_decode_thread() -> DecodeThread | None:
    """The thread engines created here should share, if a :func:`shared_decode_thread` block set one."""
    return _SCOPE.get()


@contextmanager
def shared_decode_thread(thread: DecodeThread) -> Iterator[DecodeThread]:
    """Engines created inside this block (on this context) run on ``thread``."""
    token = _SCOPE.set(thread)
    try:
        yield thread
    finally:
        _SCOPE.reset(token)
