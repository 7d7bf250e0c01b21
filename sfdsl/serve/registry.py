"""The served models: every recipe of a .sf file or a directory, and one runtime per model override.

A recipe is served under its own name, or as ``file:recipe`` when two files declare
the same name. A model name may end in ``@ALIAS`` (``self_consistency@qwen``): the
run then uses a pool whose llama models load that alias's GGUF instead. Aliases are
the default ones and those of the models config; file paths are not accepted from
requests, so a client cannot make the server open a file of its choosing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sfdsl.api import Recipe
from sfdsl.errors import ModelNotFoundError
from sfdsl.models import DEFAULT_ALIASES, load_aliases
from sfdsl.recipe_sets import load_recipe_set
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.session import Runtime
from sfdsl.serve.protocol import HTTPError


@dataclass(frozen=True)
class ServedRecipe:
    """One recipe under the model name it is served as."""

    name: str
    recipe: Recipe

    @property
    def params(self) -> list[tuple[str, str]]:
        """(name, type) of each input, in declaration order."""
        return [(name, type_name) for name, type_name, _ in self.recipe.params]


class RecipeRegistry:
    """Recipes by model name.

    Example:
        >>> registry = RecipeRegistry.from_path("recipes")  # doctest: +SKIP
        >>> registry.resolve("self_consistency@default")  # doctest: +SKIP
    """

    def __init__(self, recipes: list[ServedRecipe], *, aliases: frozenset[str] | None = None) -> None:
        self._recipes = {r.name: r for r in recipes}
        self._aliases = aliases if aliases is not None else known_aliases()

    @classmethod
    def from_path(cls, path: str | Path, *, import_path: Sequence[str | Path] = ()) -> RecipeRegistry:
        """Every recipe of a .sf file, or of every .sf file directly inside a directory.

        Raises:
            SourceNotFoundError: when the path does not exist or holds no .sf file.
            CompileError: when a file does not compile.
        """
        return cls([ServedRecipe(name=name, recipe=recipe)
                    for name, recipe in load_recipe_set(path, import_path=import_path)])

    def __iter__(self) -> Iterator[ServedRecipe]:
        return iter(self._recipes.values())

    def __len__(self) -> int:
        return len(self._recipes)

    def resolve(self, model: str) -> tuple[ServedRecipe, str | None]:
        """The recipe a model name serves, and the alias it asks for (None: the recipe's own models).

        Raises:
            HTTPError: 404 for an unknown recipe or alias; 400 for an '@' without one alias after it.
        """
        name, at, alias = model.partition("@")
        if at and (not alias or "@" in alias):
            raise HTTPError(400, f"model '{model[:200]}': '@' must be followed by one model alias (RECIPE@ALIAS)",
                            code="invalid_model", param="model")
        served = self._recipes.get(name)
        if served is None:
            shown = ", ".join(sorted(self._recipes)[:20])
            raise HTTPError(404, f"model '{model[:200]}' does not exist; served: {shown}", type="not_found_error",
                            code="model_not_found", param="model")
        if not alias:
            return served, None
        if alias not in self._aliases:
            raise HTTPError(404, f"unknown model alias '{alias[:100]}' (known: {', '.join(sorted(self._aliases))})",
                            type="not_found_error", code="model_not_found", param="model")
        return served, alias


def known_aliases() -> frozenset[str]:
    """The default aliases plus those of the models config (an unreadable config contributes none)."""
    try:
        return DEFAULT_ALIASES | frozenset(load_aliases())
    except ModelNotFoundError:
        return DEFAULT_ALIASES


class RuntimeSet:
    """One ``sfdsl.Runtime`` per model override (None: the recipes' own models), each owning a pool made on
    first use; every run with that override shares it, so each model loads once."""

    def __init__(self, make_pool: Callable[[str | None], BackendPool]) -> None:
        self._make = make_pool
        self._runtimes: dict[str | None, Runtime] = {}

    def get(self, alias: str | None) -> Runtime:
        if alias not in self._runtimes:
            self._runtimes[alias] = Runtime(pool=self._make(alias))
        return self._runtimes[alias]

    def backends(self) -> list[Backend]:
        """Every backend of every open runtime."""
        return [backend for rt in list(self._runtimes.values()) if not rt.closed for backend in rt.pool.backends()]

    async def aclose(self) -> None:
        """Close every runtime (and the models they loaded)."""
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        await asyncio.gather(*(rt.aclose() for rt in runtimes))
