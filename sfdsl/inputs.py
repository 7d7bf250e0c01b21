"""Binding and type-checking recipe inputs given at run time (CLI strings, JSON or Python values).

Every caller (API, CLI, eval, serve) goes through ``convert``: one pydantic TypeAdapter per declared type.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StrictStr, TypeAdapter, ValidationError

from sfdsl import ast
from sfdsl.agent_values import Message, ToolSpec
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.expressions import NotStatic, evaluate
from sfdsl.types import ANY, BOOL, CONVERSATION, FLOAT, INT, SCHEMA, STR, TOOLS, Type, parse_type


def bind_inputs(recipe: ast.RecipeDecl, given: dict[str, Any], *, from_text: bool = False,
                require_all: bool = True, strict: bool = False) -> dict[str, Any]:
    """Check ``given`` against the recipe's inputs, convert types, fill defaults.

    Args:
        from_text: values are command-line strings to convert (``-i n=8``).
        require_all: when false, required inputs may be missing (for cost bounds).
        strict: no coercion between types (``"0.5"`` is not a float, ``"yes"`` not a bool): for JSON
            from HTTP clients, unlike ``-i`` text. An int is still a float.

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
            bound[name] = convert(given[name], str(param.type), name=name, from_text=from_text, strict=strict)
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


def _valid_schema(value: dict[str, Any]) -> dict[str, Any]:
    from sfdsl.json_schema import schema_problem

    problem = schema_problem(value, grammar=False)
    if problem is not None:
        raise ValueError(problem)
    return value


def _unique_tools(value: list[ToolSpec]) -> list[ToolSpec]:
    names = [tool.name for tool in value]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"tool names must be unique; given twice: {', '.join(twice)}")
    return value


#: The Python type each agent input type is validated as (OpenAI's wire shapes, sfdsl/agent_values.py).
_STRUCTURED: dict[Type, Any] = {
    CONVERSATION: list[Message],
    TOOLS: Annotated[list[ToolSpec], AfterValidator(_unique_tools)],
    SCHEMA: Annotated[dict[str, Any], AfterValidator(_valid_schema)],
}


def _python_type(type_: Type) -> Any:
    if type_ in _STRUCTURED:
        return _STRUCTURED[type_]
    if type_.item is not None:
        return list[_python_type(type_.item)]  # type: ignore[misc]
    return _SCALARS.get(type_, Any)


@lru_cache(maxsize=64)
def adapter(type_: Type) -> TypeAdapter[Any]:
    """The pydantic validator of one declared input type (the one coercion path of CLI, API, eval and serve)."""
    return TypeAdapter(_python_type(type_))


def _from_text(value: str, type_: Type) -> Any:
    """A command-line or CSV string read as the type's data: lists as JSON or comma-separated."""
    if type_ in _STRUCTURED:
        return json.loads(value)
    if type_.item is None:
        return value.strip() if type_ in (INT, FLOAT, BOOL) else value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [_from_text(v.strip(), type_.item) for v in text.split(",")]


def convert(value: Any, type_name: str | Type, *, name: str, from_text: bool = False, strict: bool = False) -> Any:
    """Convert one input value to its declared type.

    Args:
        from_text: the value is text to read (``-i n=8``, a CSV cell); otherwise it is JSON or Python data.
        strict: refuse values of another type instead of converting them (see ``bind_inputs``).

    Raises:
        InputError: naming the input and the type it must have.
    """
    type_ = type_name if isinstance(type_name, Type) else parse_type(type_name) or ANY
    try:
        if from_text and type_ == STR and value is not None:
            data = str(value)
        else:
            data = _from_text(value, type_) if from_text and isinstance(value, str) else value
        return adapter(type_).validate_python(data, strict=strict or None)
    except ValidationError as exc:
        raise InputError(f"input '{name}' must be {type_}{_why(exc, type_)}, got {_clip(value)}") from None
    except (ValueError, TypeError, RecursionError):
        raise InputError(f"input '{name}' must be {type_}, got {_clip(value)}") from None


def _why(exc: ValidationError, type_: Type) -> str:
    """The first validation error, for the structured types whose values are nested."""
    if type_ not in _STRUCTURED:
        return ""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f" ({where + ': ' if where else ''}{first['msg']})"


def _clip(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
