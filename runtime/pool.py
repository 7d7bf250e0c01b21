"""Backends by model declaration: each distinct model is created once and shared across runs."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sfdsl.errors import InputError
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.backends.scripted import ScriptedBackend

Factory = Callable[[dict[str, Any]], Backend]


def _llama(params: dict[str, Any]) -> Backend:
    from sfdsl.runtime.backends.llama import LlamaBackend

    return LlamaBackend.from_params(params)


def _openai(params: dict[str, Any]) -> Backend:
    from sfdsl.runtime.backends.openai_http import OpenAIBackend

    return OpenAIBackend.from_params(params)


def _scripted(params: dict[str, Any]) -> Backend:
    return scripted_from_file(params.get("file") or params.get("script") or "")


DEFAULT_FACTORIES: Mapping[str, Factory] = {"llama": _llama, "openai": _openai, "scripted": _scripted}


def scripted_from_file(path: str | Path) -> ScriptedBackend:
    """A scripted backend from a JSON file: a list of replies, or {"replies": ..., "scores": {...}}.

    Raises:
        InputError: when the file is missing or not valid JSON of that shape.
    """
    from sfdsl.inputs import load_json

    file = Path(path)
    data = load_json(file, what="script file")
    if isinstance(data, dict) and "replies" in data:
        return ScriptedBackend(data["replies"], scores=data.get("scores"))
    if isinstance(data, (list, dict)):
        return ScriptedBackend(data)
    raise InputError(f"script file {file} must hold a list of replies or an object with 'replies'")


class BackendPool:
    """Resolves a recipe's model declarations to shared backend instances.

    Args:
        backend: when given, every model resolves to this one backend.
        model: when given, overrides the model file/alias of every llama model.
        wrap: applied to each backend created (e.g. an on-disk cache).
    """

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        model: str | None = None,
        factories: Mapping[str, Factory] = DEFAULT_FACTORIES,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> None:
        self._fixed = backend
        self._model = model
        self._factories = factories
        self._wrap = wrap
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()  # not an asyncio.Lock: a runtime's pool may serve more than one event loop

    async def get(self, backend: str, params: dict[str, Any]) -> Backend:
        """The shared backend for a model declaration, created on first use."""
        if self._fixed is not None:
            return self._fixed
        params = dict(params)
        if self._model is not None and backend == "llama":
            params["model"] = self._model
        key = backend + json.dumps(params, sort_keys=True, default=str)
        found = self._backends.get(key)
        if found is not None:
            return found
        factory = self._factories.get(backend)
        if factory is None:
            raise InputError(f"unknown backend '{backend}' (known: {', '.join(self._factories)})")
        return await asyncio.to_thread(self._create, key, factory, params)

    def _create(self, key: str, factory: Factory, params: dict[str, Any]) -> Backend:
        """Create the backend once, however many runs and loops ask for it at the same time."""
        with self._lock:
            if key not in self._backends:
                created = factory(params)
                self._backends[key] = self._wrap(created) if self._wrap else created
            return self._backends[key]

    def model_ids(self) -> str:
        """Identifiers of every backend in use, for result hashing."""
        if self._fixed is not None:
            return self._fixed.model_id
        return ",".join(sorted(b.model_id for b in self._backends.values()))

    async def aclose(self) -> None:
        """Close every backend this pool created."""
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            await backend.aclose()
