"""The backend pool creates each model once, however many runs and event loops ask at the same time."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sfdsl.errors import InputError
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.pool import BackendPool, pool_from_spec


def test_concurrent_requests_from_several_loops_create_one_backend() -> None:
    created: list[Backend] = []

    def slow_factory(params: dict[str, Any]) -> Backend:
        time.sleep(0.05)
        backend = ScriptedBackend(["x"])
        created.append(backend)
        return backend

    pool = BackendPool(factories={"llama": slow_factory})
    got: list[Backend] = []

    async def many() -> None:
        got.extend(await asyncio.gather(*(pool.get("llama", {"model": "default"}) for _ in range(8))))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1 and len(got) == 24 and all(b is created[0] for b in got)


def test_unknown_backend_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown backend 'nope'"):
        asyncio.run(BackendPool().get("nope", {}))


def test_a_missing_script_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        pool_from_spec(f"scripted:{tmp_path / 'missing.json'}")


def test_a_scripted_backend_from_a_file_keeps_no_request_history(tmp_path: Path) -> None:
    from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt

    script = tmp_path / "replies.json"
    script.write_text('["The answer is 4.", "The answer is 4.", "The answer is 4."]')
    backend = pool_from_spec(f"scripted:{script}").backends()[0]
    prompt = Prompt(messages=(Message(role="user", content="2+2?"),))
    for _ in range(3):
        [done] = asyncio.run(backend.generate(GenerateRequest(prompt=prompt, max_tokens=8)))
        assert done.text == "The answer is 4."
    assert isinstance(backend, ScriptedBackend) and backend.requests == []  # a server on it stays flat
