"""Which recipe a model name serves, and the pool it runs on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from serve_support import RECIPES

from sfdsl.errors import SourceNotFoundError
from sfdsl.runtime.pool import BackendPool
from sfdsl.serve.protocol import HTTPError
from sfdsl.serve.registry import RecipeRegistry, RuntimeSet

ECHO = 'recipe {name}(question: str) -> answer {{\n  prompt p = "{{{{ question }}}}"\n  said = generate p ' \
       '(max_tokens: 8)\n  return said\n}}\n'


def test_a_file_serves_each_of_its_recipes() -> None:
    registry = RecipeRegistry.from_path(RECIPES / "self_consistency.sf")
    assert sorted(s.name for s in registry) == ["self_consistency", "self_consistency_weighted"]


def test_clashes_get_file_prefixes_and_unique_names_stay_plain(tmp_path: Path) -> None:
    (tmp_path / "a.sf").write_text(ECHO.format(name="echo") + ECHO.format(name="only_a"))
    (tmp_path / "b.sf").write_text(ECHO.format(name="echo"))
    names = sorted(s.name for s in RecipeRegistry.from_path(tmp_path))
    assert names == ["a:echo", "b:echo", "only_a"]


def test_resolve_routes_aliases_and_refuses_unknown_names() -> None:
    registry = RecipeRegistry.from_path(RECIPES / "p_true.sf")
    served, alias = registry.resolve("p_true@smollm2")
    assert served.name == "p_true" and alias == "smollm2"
    assert registry.resolve("p_true")[1] is None
    for bad in ("nope", "p_true@nope", "p_true@/tmp/model.gguf"):
        with pytest.raises(HTTPError) as caught:
            registry.resolve(bad)
        assert caught.value.status == 404


def test_missing_path_and_empty_directory_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError):
        RecipeRegistry.from_path(tmp_path / "missing.sf")
    with pytest.raises(SourceNotFoundError):
        RecipeRegistry.from_path(tmp_path)


def test_runtime_set_makes_one_runtime_per_override_and_closes_them() -> None:
    made: list[str | None] = []

    def make(alias: str | None) -> BackendPool:
        made.append(alias)
        return BackendPool()

    runtimes = RuntimeSet(make)
    plain, qwen = runtimes.get(None), runtimes.get("qwen")
    assert runtimes.get(None) is plain and runtimes.get("qwen") is qwen and plain is not qwen
    assert made == [None, "qwen"]
    asyncio.run(runtimes.aclose())
    assert plain.closed and qwen.closed and runtimes.backends() == []


def test_served_recipes_may_import_from_the_import_path(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.sf").write_text("recipe helper(question: str) -> answer {\n  return question\n}\n")
    (tmp_path / "main.sf").write_text('import "helpers.sf" as h\nrecipe main(question: str) -> answer {\n'
                                      "  return question\n}\n")
    assert [s.name for s in RecipeRegistry.from_path(tmp_path / "main.sf", import_path=[tmp_path / "lib"])] == ["main"]
