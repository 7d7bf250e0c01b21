"""Backend pools: one shared backend per model declaration, and pools from `--backend` specs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sfdsl.errors import InputError
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.pool import BackendPool, pool_from_spec


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
