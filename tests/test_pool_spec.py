"""Backend pools from a --backend spec."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sfdsl.errors import InputError
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.pool import pool_from_spec


def test_scripted_spec_serves_every_model_from_the_file(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps(["hi"]))
    pool = pool_from_spec(f"scripted:{script}")

    async def go() -> tuple[object, object]:
        return await pool.get("llama", {}), await pool.get("openai", {"base_url": "x"})

    first, second = asyncio.run(go())
    assert isinstance(first, ScriptedBackend) and first is second and pool.backends() == [first]


def test_model_override_reaches_llama_declarations() -> None:
    made: list[dict[str, object]] = []
    pool = pool_from_spec(None, model="qwen")
    pool._factories = {"llama": lambda params: made.append(params) or ScriptedBackend([])}  # type: ignore[misc]
    asyncio.run(pool.get("llama", {"model": "default", "n_ctx": 512}))
    assert made == [{"model": "qwen", "n_ctx": 512}]


def test_unknown_spec_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown --backend"):
        pool_from_spec("gpu:0")
