"""The backend pool creates each model once, however many runs and event loops ask at the same time;
pools from `--backend` specs."""

from __future__ import annotations

import asyncio
import json
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


def test_scripted_spec_serves_every_model_from_the_script(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["The answer is 4."]))
    pool = pool_from_spec(f"scripted:{script}")
    llama = asyncio.run(pool.get("llama", {"model": "default"}))
    openai = asyncio.run(pool.get("openai", {"base_url": "http://x"}))
    assert isinstance(llama, ScriptedBackend) and llama is openai


def test_unknown_spec_and_missing_script_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown --backend 'bogus'"):
        pool_from_spec("bogus")
    with pytest.raises(InputError, match="not found"):
        pool_from_spec(f"scripted:{tmp_path / 'missing.json'}")


def test_no_spec_keeps_the_recipes_own_models() -> None:
    pool = pool_from_spec(None)
    assert isinstance(pool, BackendPool)
    backend = ScriptedBackend(["x"])
    fixed = BackendPool(backend=backend)
    assert asyncio.run(fixed.get("llama", {})) is backend
