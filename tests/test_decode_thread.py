"""DecodeThread: engines step in turn on one thread, which ends with its last engine; a crash stops only its engine."""

from __future__ import annotations

import threading
import time
from typing import Any

from sfdsl.runtime.decode_thread import DecodeThread, current_decode_thread, shared_decode_thread


class FakeEngine:
    """Counts down each job's steps, recording which thread stepped it and in what order."""

    def __init__(self, name: str, log: list[str], *, crash_on: int = -1) -> None:
        self.name, self.log, self.crash_on = name, log, crash_on
        self.jobs: list[int] = []
        self.peers: list[FakeEngine] = []
        self.busy: list[str] = []  # ticks taken while every peer had work too (may be shared)
        self.threads: set[str] = set()
        self.stopped = threading.Event()
        self.done = threading.Event()
        self.ticks = 0

    @property
    def has_work(self) -> bool:
        return bool(self.jobs)

    def enqueue(self, job: Any) -> None:
        self.jobs.append(job)

    def tick(self) -> bool:
        self.threads.add(threading.current_thread().name)
        self.ticks += 1
        if self.ticks == self.crash_on:
            self.stop()
            return False
        self.log.append(self.name)
        if all(p.has_work for p in self.peers):
            self.busy.append(self.name)
        self.jobs[0] -= 1
        if self.jobs[0] == 0:
            self.jobs.pop(0)
            if not self.jobs:
                self.done.set()
        return True

    def stop(self) -> None:
        self.stopped.set()


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def live(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_two_engines_step_in_turn_on_one_thread() -> None:
    thread, log = DecodeThread(name="decode-test-turns"), []
    a, b = FakeEngine("a", log), FakeEngine("b", log)
    a.peers, b.peers = [b], [a]
    a.busy = b.busy = []
    thread.attach(a)
    thread.attach(b)
    thread.post(a, 300)
    thread.post(b, 300)
    assert a.done.wait(5) and b.done.wait(5)
    assert a.threads == b.threads == {"decode-test-turns"}
    assert len(live("decode-test-turns")) == 1
    assert log.count("a") == log.count("b") == 300
    assert len(a.busy) > 10
    assert all(x != y for x, y in zip(a.busy, a.busy[1:], strict=False))  # while both have work, they alternate
    thread.detach(a)
    thread.detach(b)
    assert a.stopped.wait(5) and b.stopped.wait(5)
    wait_until(lambda: not live("decode-test-turns"))


def test_the_thread_ends_with_its_last_engine_and_a_new_one_restarts_it() -> None:
    thread, log = DecodeThread(name="decode-test-restart"), []
    first = FakeEngine("x", log)
    thread.attach(first)
    thread.detach(first)
    assert first.stopped.wait(5)
    wait_until(lambda: not live("decode-test-restart"))
    second = FakeEngine("y", log)
    thread.attach(second)
    thread.post(second, 2)
    assert second.done.wait(5) and second.threads == {"decode-test-restart"}
    thread.detach(second)
    assert second.stopped.wait(5)


def test_a_crashing_engine_stops_alone() -> None:
    thread, log = DecodeThread(name="decode-test-crash"), []
    bad, good = FakeEngine("bad", log, crash_on=1), FakeEngine("good", log)
    thread.attach(bad)
    thread.attach(good)
    thread.post(bad, 5)
    assert bad.stopped.wait(5)
    thread.post(good, 4)
    assert good.done.wait(5)
    assert "bad" not in log and log.count("good") == 4
    thread.detach(good)
    assert good.stopped.wait(5)
    wait_until(lambda: not live("decode-test-crash"))


def test_the_shared_scope_is_set_only_inside_its_block() -> None:
    thread = DecodeThread()
    assert current_decode_thread() is None
    with shared_decode_thread(thread):
        assert current_decode_thread() is thread
    assert current_decode_thread() is None
