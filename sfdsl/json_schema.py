"""JSON Schemas in recipes: checking one, validating a value, its GBNF grammar and its static type.

The grammar comes from llama-cpp-python's own converter (``llama_cpp.llama_grammar.json_schema_to_gbnf``);
validation from the ``jsonschema`` package (Draft 2020-12). Nothing here compiles schemas itself.

Example:
    >>> schema_problem({"type": "object", "properties": {"a": {"type": "integer"}}}) is None
    True
    >>> validation_problem({"a": "x"}, {"type": "object", "properties": {"a": {"type": "integer"}}})
    "at a: 'x' is not of type 'integer'"
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from jsonschema.validators import Draft202012Validator

from sfdsl.types import ANY, BOOL, DICT, FLOAT, INT, STR, Type, list_of

__all__ = ["gbnf_for_schema", "schema_problem", "schema_type", "validation_problem"]

#: The name of the record type a literal object schema gives its values.
RECORD_NAME = "json"
_SCALARS: dict[str, Type] = {"string": STR, "integer": INT, "number": FLOAT, "boolean": BOOL}


def schema_problem(schema: Any, *, grammar: bool = True) -> str | None:
    """Why ``schema`` cannot constrain generation, or None when it can.

    Args:
        grammar: also require that llama.cpp's converter can express it as a grammar.
    """
    if not isinstance(schema, dict):
        return f"a JSON Schema must be an object, not {type(schema).__name__}"
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
    if grammar:
        try:
            gbnf_for_schema(schema)
        except ValueError as exc:
            return str(exc)
    return None


def gbnf_for_schema(schema: dict[str, Any]) -> str:
    """The GBNF grammar whose sentences are the JSON texts valid for ``schema``.

    Raises:
        ValueError: when the converter cannot express the schema.
    """
    return _gbnf(json.dumps(schema))


@lru_cache(maxsize=128)
def _gbnf(text: str) -> str:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        raise ValueError(f"llama-cpp-python is needed to build a grammar from a schema: {exc}") from None

    try:
        grammar = str(json_schema_to_gbnf(text))
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ValueError(f"llama.cpp's grammar converter cannot express this schema: {detail}") from None
    return _LOOSE_CHAR.sub(lambda _: _JSON_CHAR, grammar)


#: llama-cpp-python's string character rule lets a raw newline or other control character into a JSON
#: string, which JSON (and so validation) forbids: a small model then writes prose inside the string.
#: llama.cpp's own converter excludes them; so does the rule put in its place.
_LOOSE_CHAR = re.compile(r'^char ::= \[\^"\\\\\] \|', re.MULTILINE)
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def validation_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why ``value`` is not valid for ``schema`` (the first error, located), or None when it is."""
    error = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"at {where}: {error.message}" if where else error.message


def schema_type(schema: Any) -> Type:
    """The static type of values valid for a literal schema: an object gives a record of its properties.

    >>> str(schema_type({"type": "array", "items": {"type": "integer"}}))
    'list[int]'
    """
    if not isinstance(schema, dict):
        return ANY
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return DICT
        return Type(RECORD_NAME, fields=tuple((str(k), schema_type(v)) for k, v in props.items()))
    if kind == "array":
        return list_of(schema_type(schema.get("items")))
    if isinstance(kind, str):
        return _SCALARS.get(kind, ANY)
    return ANY
