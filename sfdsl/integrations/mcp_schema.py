"""A recipe as an MCP tool's face: its short description, its input schema and its argument checks.

* the description is the first paragraph of the recipe's header comment (the whole
  header stays in the tool's ``_meta["sfdsl/doc"]``);
* the input schema has one property per input: its JSON type, its ``#:`` doc-comment as
  ``description``, its default, ``minimum``/``maximum`` where the input feeds a step
  parameter with known bounds (``n``, ``max_tokens``, ``temperature``, ...), and
  ``additionalProperties: false``;
* arguments are checked by sfdsl's own input binding, so an error names the argument in
  one readable sentence (and suggests a name for an unknown one).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sfdsl import ast
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import InputError
from sfdsl.inputs import bind_inputs

if TYPE_CHECKING:
    from sfdsl.api import Recipe

#: The tool function's parameter that receives the MCP request context.
CONTEXT_PARAM = "sfdsl_context"
#: Recipe input types as Python annotations (kept for ``tool_signature``).
PYTHON_TYPES: dict[str, Any] = {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list[str],
                                "list[int]": list[int], "list[float]": list[float], "any": Any}
#: Recipe input types as JSON Schema.
JSON_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"}, "int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
    "conversation": {"type": "array", "items": {"type": "object"}, "description": "OpenAI chat messages"},
    "tools": {"type": "array", "items": {"type": "object"}, "description": "OpenAI function tools"},
    "schema": {"type": "object", "description": "a JSON Schema"},
}
#: Bounds of the step parameters an input may feed (what the runtime accepts).
STEP_BOUNDS: dict[str, dict[str, float]] = {
    "n": {"minimum": 1}, "max_tokens": {"minimum": 1}, "temperature": {"minimum": 0, "maximum": 2},
    "top_p": {"exclusiveMinimum": 0, "maximum": 1}, "top_k": {"minimum": 0}, "retries": {"minimum": 0},
}


def short_description(recipe: Recipe) -> str:
    """The first paragraph of the recipe's header comment, on one line."""
    doc = recipe.ast.doc.strip()
    if not doc:
        return f"Run the sfdsl recipe {recipe.name}."
    return " ".join(doc.split("\n\n", 1)[0].split())


def json_type(type_name: str) -> dict[str, Any]:
    """The JSON Schema of an sfdsl input type (``{}`` when it has none)."""
    if type_name.startswith("list[") and type_name.endswith("]"):
        return {"type": "array", "items": json_type(type_name[5:-1])}
    return dict(JSON_TYPES.get(type_name, {}))


def input_schema(recipe: Recipe) -> dict[str, Any]:
    """The tool's input schema (see the module docstring)."""
    defaults = bind_inputs(recipe.ast, {}, require_all=False)
    bounds = input_bounds(recipe.ast)
    properties: dict[str, Any] = {}
    for param in recipe.ast.params:
        prop = {**json_type(str(param.type)), **bounds.get(param.name, {})}
        if param.doc:
            prop["description"] = param.doc
        if param.name in defaults:
            prop["default"] = defaults[param.name]
        properties[param.name] = prop
    required = [p.name for p in recipe.ast.params if p.name not in defaults]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def input_bounds(recipe: ast.RecipeDecl) -> dict[str, dict[str, float]]:
    """The bounds of inputs passed as such to a step parameter with known bounds (the tightest wins)."""
    params = {p.name for p in recipe.params}
    found: dict[str, dict[str, float]] = {}
    for arg in _args(recipe.body):
        if isinstance(arg.value, ast.Name) and arg.value.id in params and arg.name in STEP_BOUNDS:
            mine = found.setdefault(arg.value.id, {})
            for key, value in STEP_BOUNDS[arg.name].items():
                tighter = max if "inimum" in key else min
                mine[key] = tighter(mine.get(key, value), value)
    return found


def _args(node: Any) -> Iterator[ast.Arg]:
    """Every step argument under a node."""
    if isinstance(node, ast.Arg):
        yield node
    if isinstance(node, list):
        for item in node:
            yield from _args(item)
    elif isinstance(node, ast.Node):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, ast.Node | list):
                yield from _args(value)


def check_arguments(recipe: Recipe, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe's inputs from a tool call's arguments.

    Raises:
        InputError: naming the first unknown, missing or mistyped argument, in one sentence.
    """
    names = [p.name for p in recipe.ast.params]
    for name in arguments:
        if name not in names:
            raise InputError(with_suggestion(f"unknown argument '{name}'", name, names) +
                             f"; the arguments are {', '.join(names)}")
    return bind_inputs(recipe.ast, dict(arguments))


def tool_signature(recipe: Recipe) -> inspect.Signature:
    """The Python signature of a recipe's tool: one keyword parameter per input, with its type and default."""
    defaults = bind_inputs(recipe.ast, {}, require_all=False)
    parameters = []
    for param in recipe.ast.params:
        if param.name.startswith("_") or param.name == CONTEXT_PARAM:
            raise InputError(f"recipe '{recipe.name}': input '{param.name}' cannot be an MCP tool argument "
                             f"(names starting with '_', and '{CONTEXT_PARAM}', are reserved)")
        default = defaults.get(param.name, inspect.Parameter.empty)
        parameters.append(inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=PYTHON_TYPES.get(str(param.type), Any)))
    return inspect.Signature(parameters)
