"""Binding and type-checking recipe inputs given at run time (CLI strings, JSON or Python values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sfdsl import ast
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.expressions import NotStatic, evaluate


def bind_inputs(recipe: ast.Recipe, given: dict[str, Any], *, from_text: bool = False,
                require_all: bool = True) -> dict[str, Any]:
    """Check ``given`` against the recipe's inputs, convert types, fill defaults.

    Args:
        from_text: values are command-line strings to convert (``-i n=8``).
        require_all: when false, required inputs may be missing (for cost bounds).

    Raises:
        InputError: naming the unknown, missing or mistyped input.
    """
    params = {p.name: p for p in recipe.params}
    for name in given:
        if name not in params:
            message = with_suggestion(f"recipe '{recipe.name}' has no input '{name}'", name, params)
            raise InputError(f"{message}; inputs: {', '.join(params) or 'none'}")
    bound: dict[str, Any] = {}
    for name, param in params.items():
        if name in given:
            bound[name] = convert(given[name], str(param.type), name=name, from_text=from_text)
        elif param.default is not None:
            bound[name] = evaluate(param.default, _no_names)
        elif require_all:
            raise InputError(f"recipe '{recipe.name}' needs input '{name}' ({param.type}); pass -i {name}=...")
    return bound


def _no_names(name: str) -> Any:
    raise NotStatic(name)


def convert(value: Any, type_name: str, *, name: str, from_text: bool = False) -> Any:
    """Convert one input value to its declared type."""
    try:
        if type_name == "str":
            if not isinstance(value, str) and not from_text:
                raise ValueError
            return str(value)
        if type_name == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value) if not isinstance(value, str) else int(value.strip())
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.strip().lower() in ("true", "1", "yes")
            raise ValueError
        if type_name.startswith("list["):
            if isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else [v.strip() for v in value.split(",")]
            if not isinstance(value, list):
                raise ValueError
            inner = type_name[5:-1]
            return [convert(v, inner, name=name, from_text=isinstance(v, str)) for v in value]
        return value
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InputError(f"input '{name}' must be {type_name}, got {value!r}") from None


def load_json(path: str | Path, *, what: str) -> Any:
    """Read a JSON file a user named on the command line.

    Raises:
        InputError: when the file is missing or not valid JSON, naming ``what`` it was for.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{what} not found: {file}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{what} {file} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
