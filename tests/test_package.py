"""The package front end is light: the parser, checker and compiler load no runtime module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sfdsl


def _modules_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return [m for m in json.loads(out) if m.startswith("sfdsl")]


@pytest.mark.parametrize("module", ["sfdsl.parser", "sfdsl.checker", "sfdsl.compiler", "sfdsl"])
def test_front_end_imports_no_runtime_module(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    assert module in loaded
    assert [m for m in loaded if m.startswith("sfdsl.runtime")] == []


def test_compiling_a_recipe_loads_no_runtime_module() -> None:
    loaded = _modules_after(
        "from sfdsl.compiler import compile_file\ncompile_file('recipes/self_consistency.sf')"
    )
    assert [m for m in loaded if m.startswith("sfdsl.runtime")] == []


def test_public_names_resolve_lazily() -> None:
    for name in sfdsl.__all__:
        assert getattr(sfdsl, name) is not None
    assert sfdsl.Budget.__module__ == "sfdsl.runtime.context"
    assert set(sfdsl.__all__) <= set(dir(sfdsl))


def test_unknown_public_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sfdsl.nope  # noqa: B018
