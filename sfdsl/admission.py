"""Admission by static bound: refuse a run, before it starts, when its worst case with its inputs is over caps.

sfdsl knows a run's worst-case cost from its plan and its input values (``Recipe.bound``).
``admit`` turns that into a gate that every face shares (``sfrun serve``, the Python API's
``arun(caps=...)``, LangChain and MCP through it):

* pinned inputs (fixed by an operator) may not be overridden with another value;
* step parameters fed by an input must be in the range the backend accepts
  (``n``, ``max_tokens``... as ``GenerateRequest`` declares them), named by input;
* the bound may not exceed any cap: model calls, generated tokens, sequences at once.

Example:
    >>> import sfdsl
    >>> recipe = sfdsl.compile('''
    ... recipe r(q: str, k: int = 2) -> answer {
    ...   prompt p = "{{ q }}"
    ...   xs = generate p (n: k, max_tokens: 8)
    ...   return xs
    ... }''').recipe()
    >>> sfdsl.admit(recipe, {"q": "hi"}, sfdsl.Caps(max_calls=4)).bound.calls
    1
    >>> sfdsl.admit(recipe, {"q": "hi", "k": 9}, sfdsl.Caps(max_parallel=4))
    Traceback (most recent call last):
    ...
    sfdsl.errors.OverCapError: run of 'r' needs up to 9 sequences at once, over the cap max_request_parallel=4 ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from sfdsl import ast
from sfdsl.bounds import Bound
from sfdsl.errors import InputError, OverCapError


class Bounded(Protocol):
    """What admission reads of a recipe (``sfdsl.api.Recipe``), named here so that admission and the API do not
    import each other."""

    name: str
    ast: ast.RecipeDecl

    def bound(self, inputs: dict[str, Any] | None = None) -> Bound: ...

__all__ = ["SERVE_DEFAULTS", "Admitted", "Caps", "admit", "check_pins", "check_step_values", "input_problems"]


@dataclass(frozen=True)
class Caps:
    """Per-run caps on the static bound; None leaves a measure uncapped.

    Attributes:
        max_calls: model calls (``--max-request-calls``).
        max_tokens: generated tokens (``--max-request-tokens``).
        max_parallel: sequences decoded at once (``--max-request-parallel``).
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    max_parallel: int | None = None

    def over(self, bound: Bound) -> list[tuple[str, str, int, int]]:
        """Each cap the bound exceeds: (cap name, what it counts, cap, bound value)."""
        rows = [("max_request_calls", "model calls", self.max_calls, bound.calls),
                ("max_request_tokens", "generated tokens", self.max_tokens, bound.tokens),
                ("max_request_parallel", "sequences at once", self.max_parallel, bound.parallel)]
        return [(name, what, cap, value) for name, what, cap, value in rows if cap is not None and value > cap]

    def as_dict(self) -> dict[str, int | None]:
        return {"max_request_calls": self.max_calls, "max_request_tokens": self.max_tokens,
                "max_request_parallel": self.max_parallel}


#: The caps `sfrun serve` applies unless told otherwise: every shipped recipe fits with its default
#: inputs, with room for larger n and k, while a request cannot ask for millions of calls.
SERVE_DEFAULTS = Caps(max_calls=256, max_tokens=65_536, max_parallel=64)


@dataclass(frozen=True)
class Admitted:
    """A run that passed admission: its bound inputs (typed, pins and defaults filled) and its static bound."""

    inputs: dict[str, Any]
    bound: Bound


def admit(recipe: Bounded, inputs: Mapping[str, Any], caps: Caps | None = None, *,
          pinned: Mapping[str, Any] | None = None, strict: bool = False) -> Admitted:
    """Bind a run's inputs and check the run before it starts.

    Args:
        recipe: the recipe to run.
        inputs: what the caller gives (a request's inputs); checked against ``pinned``, then bound.
        caps: the caps to hold the bound to; None checks only pins and step values.
        pinned: inputs an operator fixed (typed values); ``inputs`` may repeat them, not change them.
        strict: bind without coercion between types (JSON from HTTP clients).

    Raises:
        InputError: for unknown, missing or mistyped inputs, an input that overrides a pinned one, or one
            that feeds a step parameter out of its range (named with the step's location).
        OverCapError: when the bound exceeds a cap (the first one, in the order calls, tokens, parallel).
        CompileError: when a loop bound is not known before the run.
    """
    from sfdsl.inputs import bind_inputs

    pinned = dict(pinned or {})
    given = dict(inputs)
    if pinned:
        typed = bind_inputs(recipe.ast, {k: v for k, v in given.items() if k in pinned}, require_all=False,
                            strict=strict)
        check_pins(recipe.name, {k: typed[k] for k in given if k in pinned}, pinned)
    bound_inputs = bind_inputs(recipe.ast, {**given, **pinned}, strict=strict)
    check_step_values(recipe.ast, bound_inputs)
    bound = recipe.bound(bound_inputs)
    over = (caps or Caps()).over(bound)
    if over:
        name, what, cap, value = over[0]
        culprits = _numeric_inputs(recipe.ast, bound_inputs)
        hint = f"; lower {', '.join(culprits)}" if culprits else ""
        raise OverCapError(f"run of '{recipe.name}' needs up to {value} {what}, over the cap {name}={cap} "
                           f"(bound: {bound}){hint}", cap=name, limit=cap, bound=value)
    return Admitted(inputs=bound_inputs, bound=bound)


def check_pins(recipe: str, inputs: Mapping[str, Any], pinned: Mapping[str, Any]) -> None:
    """Refuse a value for a pinned input other than the pinned one.

    Raises:
        InputError: naming the input and its pinned value.
    """
    for name, value in pinned.items():
        if name in inputs and not _same(inputs[name], value):
            raise InputError(f"input '{name}' of '{recipe}' is pinned to {value!r} on this server; "
                             f"a request may not set it to {inputs[name]!r}")


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _ranges() -> dict[str, list[Any]]:
    """The value constraints of each numeric backend request field (ge, gt, le, lt), from GenerateRequest."""
    from sfdsl.runtime.backends.base import GenerateRequest

    model: type[BaseModel] = GenerateRequest
    return {name: [m for m in f.metadata if isinstance(m, (Ge, Gt, Le, Lt))]
            for name, f in model.model_fields.items() if f.annotation in (int, float)}


def _breaks(value: Any, rule: Any) -> str | None:
    table = {Ge: ("ge", ">=", lambda v, x: v >= x), Gt: ("gt", ">", lambda v, x: v > x),
             Le: ("le", "<=", lambda v, x: v <= x), Lt: ("lt", "<", lambda v, x: v < x)}
    attr, sign, holds = table[type(rule)]
    limit = getattr(rule, attr)
    return None if holds(value, limit) else f"{sign} {limit}"


def input_problems(recipe: ast.RecipeDecl, inputs: Mapping[str, Any]) -> list[str]:
    """Each step parameter fed directly by an input whose value the backend would refuse, as a sentence."""
    ranges = _ranges()
    problems: list[str] = []
    for arg in _args(recipe.body, inputs):
        rules = ranges.get(arg.name)
        if not rules or not isinstance(arg.value, ast.Name) or arg.value.id not in inputs:
            continue
        value = inputs[arg.value.id]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"input '{arg.value.id}' is {value}, which `{arg.name}:` at {arg.span} cannot take")
            continue
        for rule in rules:
            broken = _breaks(value, rule)
            if broken:
                problems.append(f"input '{arg.value.id}' = {value!r} feeds `{arg.name}:` at {arg.span}, "
                                f"which must be {broken}")
                break
    return problems


def check_step_values(recipe: ast.RecipeDecl, inputs: Mapping[str, Any]) -> None:
    """Raise the first of ``input_problems``.

    Raises:
        InputError: naming the input, the step parameter it feeds and the allowed range.
    """
    problems = input_problems(recipe, inputs)
    if problems:
        raise InputError(problems[0])


def _args(root: Any, inputs: Mapping[str, Any]) -> Iterator[ast.Arg]:
    """Every step or model argument of a block that may run, without recursion.

    An ``if`` whose condition the inputs decide contributes only the branch taken; one they do not
    decide contributes neither (a guarded step, ``if k > 0 { ... (n: k) }``, is not judged).
    """
    from sfdsl.expressions import ExprError, NotStatic, evaluate, truthy

    def lookup(name: str) -> Any:
        if name not in inputs:
            raise NotStatic(name)
        return inputs[name]

    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Arg):
            yield node
        elif isinstance(node, ast.If):
            try:
                taken = node.then if truthy(evaluate(node.cond, lookup)) else node.orelse
            except (NotStatic, ExprError, TypeError, ValueError):
                continue
            if taken is not None:
                stack.append(taken)
        elif isinstance(node, BaseModel):
            stack.extend(getattr(node, name) for name in type(node).model_fields if name != "span")
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def _numeric_inputs(recipe: ast.RecipeDecl, inputs: Mapping[str, Any]) -> list[str]:
    """Names of the int inputs a run sets above their defaults: the likely reason it is over a cap."""
    from sfdsl.expressions import evaluate

    names = []
    for param in recipe.params:
        value = inputs.get(param.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        default = evaluate(param.default, lambda n: None) if param.default is not None else None
        if not isinstance(default, int) or value > default:
            names.append(f"'{param.name}' ({value})")
    return names
