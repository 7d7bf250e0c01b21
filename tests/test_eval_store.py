"""The results store: one writer at a time (a lock file naming its pid), taken over from a killed writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfdsl.eval.store import ResultStore, StoreBusy, WriterLock, lock_path

HOLD = """
import sys, time
from sfdsl.eval.store import ResultStore
store = ResultStore(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_at_once_naming_the_holder_pid(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    proc = _holder(path)
    try:
        start = time.monotonic()
        with pytest.raises(StoreBusy) as info:
            ResultStore(path)
        with pytest.raises(StoreBusy):
            WriterLock(path)
        assert time.monotonic() - start < 5
        message = str(info.value)
        assert f"pid {proc.pid}" in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_left_by_a_killed_writer_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    proc = _holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_path(path).read_text().strip() == str(proc.pid)  # the stale file stays behind
    with ResultStore(path):
        assert lock_path(path).read_text().strip() == str(os.getpid())


def test_closing_the_store_lets_the_next_writer_in(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    first = ResultStore(path)
    with pytest.raises(StoreBusy):
        ResultStore(path)  # a second open in the same process is a second writer too
    first.close()
    with ResultStore(path):
        pass


def test_a_store_opened_without_its_lock_leaves_it_to_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    writer = WriterLock(path)
    with ResultStore(path, lock=False), pytest.raises(StoreBusy):
        ResultStore(path)
    writer.release()
    with ResultStore(path):
        pass
