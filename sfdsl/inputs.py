"""Binding and type-checking recipe inputs given at run time (CLI strings, JSON or Python values).

Every caller (API, CLI, eval, serve) goes through ``convert``: one pydantic TypeAdapter per declared type.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, StrictStr, TypeAdapter, ValidationError

from sfdsl import ast
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.expressions import NotStatic, evaluate
from sfdsl.types import ANY, BOOL, FLOAT, INT, STR, Type, parse_type


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


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return value


#: The Python type each scalar input type is validated as.
_SCALARS: dict[Type, Any] = {
    STR: StrictStr,
    INT: Annotated[int, BeforeValidator(_not_bool)],
    FLOAT: Annotated[float, BeforeValidator(_not_bool)],
    BOOL: bool,
    ANY: Any,
}


def _python_type(type_: Type) -> Any:
    if type_.item is not None:
        return list[_python_type(type_.item)]  # type: ignore[misc]
    return _SCALARS.get(type_, Any)


@lru_cache(maxsize=64)
def adapter(type_: Type) -> TypeAdapter[Any]:
    """The pydantic validator of one declared input type (the one coercion path of CLI, API, eval and serve)."""
    return TypeAdapter(_python_type(type_))


def _from_text(value: str, type_: Type) -> Any:
    """A command-line or CSV string read as the type's data: lists as JSON or comma-separated."""
    if type_.item is None:
        return value.strip() if type_ in (INT, FLOAT, BOOL) else value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [_from_text(v.strip(), type_.item) for v in text.split(",")]


def convert(value: Any, type_name: str | Type, *, name: str, from_text: bool = False) -> Any:
    """Convert one input value to its declared type.

    Args:
        from_text: the value is text to read (``-i n=8``, a CSV cell); otherwise it is JSON or Python data.

    Raises:
        InputError: naming the input and the type it must have.
    """
    type_ = type_name if isinstance(type_name, Type) else parse_type(type_name) or ANY
    try:
        if from_text and type_ == STR and value is not None:
            data = str(value)
        else:
            data = _from_text(value, type_) if from_text and isinstance(value, str) else value
        return adapter(type_).validate_python(data)
    except (ValidationError, ValueError, TypeError, RecursionError):
        raise InputError(f"input '{name}' must be {type_}, got {_shown(value)}") from None


def _shown(value: Any, limit: int = 80) -> str:
    """A value's repr for an error message, cut to ``limit`` characters (a 100,000-digit input stays short)."""
    text = repr(value) if not isinstance(value, (list, dict)) or len(value) < 100 else f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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
