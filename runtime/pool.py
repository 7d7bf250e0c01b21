"""Backends by model declaration: each distinct model is created once and shared across runs."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sfdsl.declarations import BACKENDS, BackendDecl, backend_usage, resolve_reference
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.decode_thread import DecodeThread, shared_decode_thread

Factory = Callable[[dict[str, Any]], Backend]


def _factory(decl: BackendDecl) -> Factory:
    def create(params: dict[str, Any]) -> Backend:
        return resolve_reference(decl.factory)(params)  # type: ignore[no-any-return]

    return create


def declared_factories() -> dict[str, Factory]:
    """A factory for every backend declared now (sfdsl/declarations.py)."""
    return {name: _factory(decl) for name, decl in BACKENDS.items()}


def scripted_from_params(params: dict[str, Any]) -> ScriptedBackend:
    """The `scripted` backend of a model declaration: `scripted(file: "replies.json")`."""
    return scripted_from_file(params.get("file") or params.get("script") or "")


def scripted_from_file(path: str | Path) -> ScriptedBackend:
    """A scripted backend from a JSON file: a list of replies, or {"replies": ..., "scores": {...}}.

    Raises:
        InputError: when the file is missing or not valid JSON of that shape.
    """
    from sfdsl.inputs import load_json

    file = Path(path)
    data = load_json(file, what="script file")
    if isinstance(data, dict) and "replies" in data:
        return ScriptedBackend(data["replies"], scores=data.get("scores"), record=False)
    if isinstance(data, (list, dict)):
        return ScriptedBackend(data, record=False)
    raise InputError(f"script file {file} must hold a list of replies or an object with 'replies'")


class BackendPool:
    """Resolves a recipe's model declarations to shared backend instances.

    Args:
        backend: when given, every model resolves to this one backend.
        model: when given, overrides the model file/alias of every llama model.
        factories: backend name → factory; by default every declared backend, looked up when first used.
        override: ``(declaration, params)``: every model declaration resolves to this backend, a declaration of
            the same backend keeping its own parameters, each with ``params`` on top (a ``--backend`` spec).
        wrap: applied to each backend created (e.g. an on-disk cache).
        decode_thread: the thread its CPU llama models step on (pools may share one); a new one by default.

    The llama models it creates on the CPU share one decode thread (see runtime/decode_thread.py).
    """

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        model: str | None = None,
        factories: Mapping[str, Factory] | None = None,
        override: tuple[BackendDecl, Mapping[str, Any]] | None = None,
        wrap: Callable[[Backend], Backend] | None = None,
        decode_thread: DecodeThread | None = None,
    ) -> None:
        self._fixed = backend
        self._model = model
        self._factories = factories
        self._override = override
        self._wrap = wrap
        self._backends: dict[str, Backend] = {}
        self._decode = decode_thread or DecodeThread()
        self._lock = threading.Lock()  # not an asyncio.Lock: a runtime's pool may serve more than one event loop

    async def get(self, backend: str, params: dict[str, Any]) -> Backend:
        """The shared backend for a model declaration, created on first use."""
        if self._fixed is not None:
            return self._fixed
        params = dict(params)
        decl = BACKENDS.get(backend)
        if self._override is not None:
            target, forced = self._override
            params = {**(params if backend == target.name else target.defaults), **forced}
            backend = target.name
        elif self._model is not None and decl is not None and decl.model_files:
            params["model"] = self._model
        key = backend + json.dumps(params, sort_keys=True, default=str)
        found = self._backends.get(key)
        if found is not None:
            return found
        factories = self._factories if self._factories is not None else declared_factories()
        factory = factories.get(backend)
        if factory is None:
            raise InputError(f"unknown backend '{backend}' (known: {', '.join(factories)})")
        return await asyncio.to_thread(self._create, key, factory, params)

    def _create(self, key: str, factory: Factory, params: dict[str, Any]) -> Backend:
        """Create the backend once, however many runs and loops ask for it at the same time."""
        with self._lock:
            if key not in self._backends:
                with shared_decode_thread(self._decode):
                    created = factory(params)
                self._backends[key] = self._wrap(created) if self._wrap else created
            return self._backends[key]

    @property
    def decode_thread(self) -> DecodeThread:
        """The thread this pool's CPU llama models step on."""
        return self._decode

    def backends(self) -> list[Backend]:
        """The backends in use now (the fixed one, or those created so far)."""
        return [self._fixed] if self._fixed is not None else list(self._backends.values())

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


def pool_from_spec(spec: str | None, *, model: str | None = None, wrap: Callable[[Backend], Backend] | None = None,
                   decode_thread: DecodeThread | None = None) -> BackendPool:
    """A pool from a ``--backend`` spec: None (each recipe's own models), or ``NAME[:VALUE]`` of a declared backend
    (sfdsl/declarations.py), e.g. ``llama[:MODEL]``, ``scripted:FILE.json`` or ``openai:BASE_URL[,BASE_URL...]``.

    Every model declaration then uses backend NAME; ``VALUE`` sets the parameter the declaration names (``arg``),
    and ``model`` the ``model`` parameter (the GGUF of llama, the model name of openai). Without a spec, ``model``
    overrides the GGUF of every llama declaration. ``wrap`` (e.g. ``CachedBackend``) wraps each backend created;
    ``decode_thread`` as for BackendPool.

    Raises:
        InputError: for an unknown backend or a missing value, or a script file that cannot be read.
    """
    if spec is None:
        return BackendPool(model=model, wrap=wrap, decode_thread=decode_thread)
    name, _, value = spec.partition(":")
    decl = BACKENDS.get(name)
    if decl is None:
        message = with_suggestion(f"unknown --backend {spec!r}", name, list(BACKENDS))
        raise InputError(f"{message}; use {backend_usage()}")
    if decl.arg_required and not value:
        raise InputError(f"--backend {name} needs a value: {decl.usage}")
    if value and not decl.arg:
        raise InputError(f"--backend {name} takes no value, but got {spec!r}")
    forced = {decl.arg: value} if value else {}
    if model:
        forced["model"] = model
    if decl.shared:
        with shared_decode_thread(decode_thread or DecodeThread()):
            return BackendPool(backend=_factory(decl)({**decl.defaults, **forced}))
    return BackendPool(override=(decl, forced), wrap=wrap, decode_thread=decode_thread)
