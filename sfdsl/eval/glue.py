"""Glue between ``sfrun eval`` and the sfdsl API: load a recipe as an async run_item, identify its models."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sfdsl.eval.data import Item
    from sfdsl.eval.runner import RunItem


@dataclass
class Target:
    """A loaded recipe ready to evaluate.

    Attributes:
        label: Display name (unique among the recipes of one command).
        fingerprint: Hash of the recipe source, imports included.
        input_types: Input name -> type name.
        required: Inputs without a default.
        run_item: ``await run_item(inputs, seed) -> RunResult``.
        model_ids: Ids of the models this recipe has used so far ("" before its
            first run); None to use the shared backend's ids.
        recipe: The compiled ``sfdsl.Recipe``, if any: another process rebuilds
            this target from it (``recipe.program.compiled`` is plain data).
    """

    label: str
    fingerprint: str
    input_types: dict[str, str | None]
    required: set[str]
    run_item: RunItem
    model_ids: Callable[[], str] | None = None
    recipe: Any = None


def split_recipe_spec(spec: str) -> tuple[str, str | None]:
    """``FILE.sf`` or ``FILE.sf:RECIPE`` -> (path, recipe name or None)."""
    path, sep, name = spec.rpartition(":")
    if sep and path.endswith(".sf") and name and "/" not in name:
        return path, name
    return spec, None


def shared_pool(backend: Any) -> Any:
    """The BackendPool every recipe of one command shares (so models load once).

    Args:
        backend: None (recipes' declared models), a Backend (answers every
            model), or a BackendPool (used as is).
    """
    from sfdsl.runtime.pool import BackendPool

    if isinstance(backend, BackendPool):
        return backend
    return BackendPool(backend=backend) if backend is not None else BackendPool()


def load_target(spec: str, pool: Any, limits: dict[str, Any] | None = None, *,
                import_path: Sequence[str] = ()) -> Target:
    """Glue to the sfdsl API: compile a recipe and wrap ``recipe.arun`` as a run_item.

    The recipe runs through a per-recipe view of the shared ``pool`` that
    records which models it used, so the run key names exactly its models.
    ``limits`` (``max_calls``, ``max_tokens``, ``timeout_s``) become each
    item's Budget.

    Raises:
        SfdslError: CompileError, SourceNotFoundError, RecipeNotFoundError...
    """
    import sfdsl

    path, name = split_recipe_spec(spec)
    return recipe_target(sfdsl.load(path, import_path=import_path).recipe(name), pool, limits)


def recipe_target(recipe: Any, pool: Any, limits: dict[str, Any] | None = None) -> Target:
    """A compiled recipe as a :class:`Target` running through ``pool`` (see :func:`load_target`)."""
    from sfdsl.runtime.context import Budget
    from sfdsl.runtime.pool import BackendPool

    class RecipePool(BackendPool):
        """Delegates to the shared pool; remembers the model ids handed out."""

        def __init__(self) -> None:
            super().__init__()
            self.used: set[str] = set()

        async def get(self, backend: str, params: dict[str, Any]) -> Any:
            got = await pool.get(backend, params)
            self.used.add(str(got.model_id))
            return got

        def model_ids(self) -> str:
            return ",".join(sorted(self.used))

        async def aclose(self) -> None:  # the shared pool owns the models
            return None

    params = [_param(p) for p in recipe.params]
    view = RecipePool()
    budget = Budget(**limits) if limits else None

    async def run_item(inputs: dict[str, Any], seed: int) -> Any:
        return await recipe.arun(inputs, backend=view, seed=seed, budget=budget)

    return Target(
        label=recipe.name,
        fingerprint=recipe.fingerprint,
        input_types={p[0]: p[1] for p in params},
        required={p[0] for p in params if p[2] is None},
        run_item=run_item,
        model_ids=view.model_ids,
        recipe=recipe,
    )


def _param(p: Any) -> tuple[str, str | None, Any]:
    """(name, type name, default) from a tuple or a Param-like object; default None means required."""
    if isinstance(p, tuple):
        return (p[0], None if p[1] is None else str(p[1]), p[2] if len(p) > 2 else None)
    return (p.name, None if p.type is None else str(p.type), getattr(p, "default", None))


def model_ids(backend: Any) -> str:
    """A string naming the backend's models, for the run key ("" if not known yet)."""
    if backend is None:
        return "default"
    if hasattr(backend, "model_ids"):
        return str(backend.model_ids())
    return str(getattr(backend, "model_id", type(backend).__name__))


class Warmup:
    """Wraps a run_item so one item can run early (to make a lazy BackendPool load its models)
    and its outcome is replayed, not recomputed, when the eval loop reaches that item."""

    def __init__(self, run_item: RunItem) -> None:
        self._run_item = run_item
        self._saved: dict[str, tuple[Any, BaseException | None]] = {}

    @staticmethod
    def _key(inputs: dict[str, Any], seed: int) -> str:
        return json.dumps([inputs, seed], sort_keys=True, default=str)

    async def warm(self, inputs: dict[str, Any], seed: int) -> None:
        try:
            self._saved[self._key(inputs, seed)] = (await self._run_item(dict(inputs), seed), None)
        except Exception as exc:
            self._saved[self._key(inputs, seed)] = (None, exc)

    async def __call__(self, inputs: dict[str, Any], seed: int) -> Any:
        saved = self._saved.pop(self._key(inputs, seed), None)
        if saved is None:
            return await self._run_item(inputs, seed)
        if saved[1] is not None:
            raise saved[1]
        return saved[0]


async def resolve_models(target: Target, backend: Any, run_item: Warmup, items: list[Item], seed: int) -> str:
    """Model ids for the run key; if the models are not loaded yet, run the first item to load them."""

    def ids() -> str:
        return target.model_ids() if target.model_ids is not None else model_ids(backend)

    if not ids() and items:
        await run_item.warm(items[0].inputs, seed)
    return ids()
