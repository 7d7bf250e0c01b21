"""Evaluation of .sf expressions and the table of built-in functions.

Expressions reach values only through ``values.field_of``; there is no Python
attribute access, so recipes cannot touch interpreter internals. A ``NoAnswer``
operand makes arithmetic yield ``NoAnswer`` and comparisons yield ``False``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from sfdsl import ast, regexes
from sfdsl.masking import mask_concept
from sfdsl.values import NoAnswer, Score, Text, attr_of, primary


class ExprError(Exception):
    """An expression could not be evaluated; carries the offending node's span."""

    def __init__(self, message: str, node: Any) -> None:
        super().__init__(message)
        self.node = node


class NotStatic(Exception):
    """An expression depends on a value that is only known at run time."""


Lookup = Callable[[str], Any]


def scalar(value: Any) -> Any:
    """The comparable core of a value: text of a sample, score of a score, answer of a vote."""
    value = primary(value)
    if isinstance(value, Text):
        return value.text
    if isinstance(value, Score):
        return value.score
    return value


def _numeric(value: Any) -> Any:
    value = scalar(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _mean(xs: list[Any]) -> Any:
    nums = [_numeric(x) for x in xs if not isinstance(x, NoAnswer)]
    return sum(nums) / len(nums) if nums else NoAnswer("mean of nothing")


_NOT_IN_TABLE = NoAnswer("not in table")


def _lookup(table: dict[str, Any], key: Any, default: Any = _NOT_IN_TABLE) -> Any:
    if isinstance(key, list):
        return [_lookup(table, k, default) for k in key]
    return table.get(str(scalar(key)).strip().lower(), table.get(str(scalar(key)), default))


def _mask(text: Any, word: Any, mask: str = "___") -> str:
    return mask_concept(str(scalar(text)), str(scalar(word)), str(scalar(mask)))


def _argmax(xs: list[Any]) -> int:
    nums = [_numeric(x) for x in xs]
    best = max(range(len(nums)), key=lambda i: (nums[i] if isinstance(nums[i], (int, float)) else -math.inf, -i))
    return best


def _argmin(xs: list[Any]) -> int:
    """Index of the smallest number (no-answers never win; ties keep the earliest)."""
    nums = [_numeric(x) for x in xs]
    return min(range(len(nums)), key=lambda i: (nums[i] if isinstance(nums[i], (int, float)) else math.inf, i))


def text_of(value: Any) -> str:
    """A value as text: a missing answer (none, or a failed extraction) is empty text, as the docs promise."""
    value = scalar(value)
    return "" if value is None or isinstance(value, NoAnswer) else str(value)


#: Longest text join() may build, like a template render's intermediate work (``TemplateLimits.max_work_chars``).
MAX_JOIN_CHARS = 16_000_000


def _join(xs: list[Any], sep: str = "\n") -> str:
    texts, glue = [text_of(x) for x in xs], text_of(sep)
    size = sum(len(t) for t in texts) + len(glue) * max(len(texts) - 1, 0)
    if size > MAX_JOIN_CHARS:  # refused before it is built
        raise ValueError(f"would build {size} characters (limit {MAX_JOIN_CHARS})")
    return glue.join(texts)


def _min(*xs: Any) -> Any:
    items = xs[0] if len(xs) == 1 and isinstance(xs[0], list) else list(xs)
    nums = [_numeric(x) for x in items if not isinstance(x, NoAnswer)]
    return min(nums) if nums else NoAnswer("min of nothing")


def _max(*xs: Any) -> Any:
    items = xs[0] if len(xs) == 1 and isinstance(xs[0], list) else list(xs)
    nums = [_numeric(x) for x in items if not isinstance(x, NoAnswer)]
    return max(nums) if nums else NoAnswer("max of nothing")


#: name → (implementation, minimum arity, maximum arity, result type)
BUILTINS: dict[str, tuple[Callable[..., Any], int, int, str]] = {
    "len": (lambda x: len(x) if isinstance(x, (list, str, dict)) else len(str(x)), 1, 1, "int"),
    "min": (_min, 1, 8, "float"),
    "max": (_max, 1, 8, "float"),
    "sum": (lambda xs: sum(_numeric(x) for x in xs if not isinstance(x, NoAnswer)), 1, 1, "float"),
    "mean": (_mean, 1, 1, "float"),
    "abs": (lambda x: abs(_numeric(x)), 1, 1, "float"),
    "round": (lambda x, d=0: round(_numeric(x), int(d)), 1, 2, "float"),
    "str": (text_of, 1, 1, "str"),
    "int": (lambda x: int(float(_numeric(x))), 1, 1, "int"),
    "float": (lambda x: float(_numeric(x)), 1, 1, "float"),
    "lower": (lambda x: str(scalar(x)).lower(), 1, 1, "str"),
    "strip": (lambda x: str(scalar(x)).strip(), 1, 1, "str"),
    "join": (_join, 1, 2, "str"),
    "lookup": (_lookup, 2, 3, "any"),
    "mask": (_mask, 2, 3, "str"),
    "argmax": (_argmax, 1, 1, "int"),
    "argmin": (_argmin, 1, 1, "int"),
    "exp": (lambda x: math.exp(_numeric(x)), 1, 1, "float"),
    "log": (lambda x: math.log(max(_numeric(x), 1e-300)), 1, 1, "float"),
}

_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(node: Any, lookup: Lookup) -> Any:
    """Evaluate an expression node; names are resolved through ``lookup``.

    Raises:
        ExprError: on a type error, unknown field, bad index or division by zero.
        NotStatic: propagated from ``lookup`` during static evaluation.
    """
    handler = _HANDLERS.get(node.kind)
    if handler is None:
        raise ExprError(f"cannot evaluate {node.kind}", node)
    return handler(node, lookup)


def _eval_name(node: ast.Name, lookup: Lookup) -> Any:
    return lookup(node.id)


def _eval_const(node: ast.Const, lookup: Lookup) -> Any:
    return node.value


def _eval_regex(node: ast.RegexLit, lookup: Lookup) -> Any:
    return node


def _eval_list(node: ast.ListExpr, lookup: Lookup) -> Any:
    return [evaluate(item, lookup) for item in node.items]


def _eval_dict(node: ast.DictExpr, lookup: Lookup) -> Any:
    return {k: evaluate(v, lookup) for k, v in zip(node.keys, node.values)}


def _eval_attr(node: ast.Attr, lookup: Lookup) -> Any:
    value = evaluate(node.value, lookup)
    try:
        return attr_of(value, node.attr)
    except KeyError:
        raise ExprError(f"{_describe(value)} has no field '{node.attr}'", node) from None


def _eval_index(node: ast.Index, lookup: Lookup) -> Any:
    value = evaluate(node.value, lookup)
    key = evaluate(node.index, lookup)
    try:
        if isinstance(value, dict):
            return value[str(scalar(key))]
        return value[int(_numeric(key))]
    except (IndexError, KeyError, TypeError, ValueError):
        raise ExprError(f"index {scalar(key)!r} is out of range for {_describe(value)}", node) from None


def _eval_func(node: ast.Func, lookup: Lookup) -> Any:
    impl = BUILTINS[node.func][0]
    args = [evaluate(a, lookup) for a in node.args]
    try:
        return impl(*args)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise ExprError(f"{node.func}(): {exc}", node) from None


def _eval_unary(node: ast.Unary, lookup: Lookup) -> Any:
    value = evaluate(node.operand, lookup)
    if node.op == "not":
        return not _truthy(value)
    value = _numeric(value)
    if isinstance(value, NoAnswer):
        return value
    if not isinstance(value, (int, float)):
        raise ExprError(f"cannot negate {_describe(value)}", node)
    return -value


def _eval_binop(node: ast.BinOp, lookup: Lookup) -> Any:
    if node.op == "and":
        return _truthy(evaluate(node.left, lookup)) and _truthy(evaluate(node.right, lookup))
    if node.op == "or":
        return _truthy(evaluate(node.left, lookup)) or _truthy(evaluate(node.right, lookup))
    left, right = evaluate(node.left, lookup), evaluate(node.right, lookup)
    if node.op == "matches":
        if not isinstance(right, ast.RegexLit):
            raise ExprError("'matches' needs a /regex/ on its right", node)
        try:
            return regexes.search(right.pattern, str(scalar(left)), right.flags)
        except regexes.RegexError as exc:
            raise ExprError(f"'matches': {exc}", node) from None
    if node.op == "in":
        if isinstance(right, (list, tuple)):
            return any(_equal(left, r) for r in right)
        return str(scalar(left)) in str(scalar(right))
    if node.op in _COMPARE:
        if isinstance(left, NoAnswer) or isinstance(right, NoAnswer):
            return node.op == "!=" if not (left is None or right is None) else _none_compare(node.op, left, right)
        if node.op in ("==", "!="):
            return _equal(left, right) == (node.op == "==")
        a, b = _numeric(left), _numeric(right)
        try:
            return _COMPARE[node.op](a, b)
        except TypeError:
            raise ExprError(f"cannot compare {_describe(a)} with {_describe(b)}", node) from None
    a, b = _numeric(left), _numeric(right)
    if isinstance(a, NoAnswer) or isinstance(b, NoAnswer):
        return a if isinstance(a, NoAnswer) else b
    if node.op == "+" and (isinstance(a, str) or isinstance(b, str)):
        return str(scalar(left)) + str(scalar(right))
    if node.op in ("*", "%") and (isinstance(a, (str, list, tuple)) or isinstance(b, (str, list, tuple))):
        # repetition and %-formatting of text or lists are not in the language, and could build huge values
        raise ExprError(f"cannot apply '{node.op}' to {_describe(a)} and {_describe(b)}", node)
    try:
        return _ARITH[node.op](a, b)
    except ZeroDivisionError:
        raise ExprError("division by zero", node) from None
    except TypeError:
        raise ExprError(f"cannot apply '{node.op}' to {_describe(a)} and {_describe(b)}", node) from None


def _none_compare(op: str, left: Any, right: Any) -> bool:
    is_none = (left is None or isinstance(left, NoAnswer)) and (right is None or isinstance(right, NoAnswer))
    return is_none if op == "==" else not is_none if op == "!=" else False


def _equal(left: Any, right: Any) -> bool:
    a, b = scalar(left), scalar(right)
    if a is None or isinstance(a, NoAnswer):
        return b is None or isinstance(b, NoAnswer)
    na, nb = _numeric(a), _numeric(b)
    if isinstance(na, (int, float)) and isinstance(nb, (int, float)) and not isinstance(na, bool):
        return math.isclose(float(na), float(nb), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def _truthy(value: Any) -> bool:
    value = scalar(value)
    if isinstance(value, NoAnswer) or value is None:
        return False
    return bool(value)


def truthy(value: Any) -> bool:
    """Whether a value counts as true in a condition (NoAnswer and none are false)."""
    return _truthy(value)


def _describe(value: Any) -> str:
    if isinstance(value, NoAnswer):
        return "no answer"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__.lower()}"


_HANDLERS: dict[str, Callable[[Any, Lookup], Any]] = {
    "name": _eval_name,
    "const": _eval_const,
    "regex": _eval_regex,
    "list": _eval_list,
    "dict": _eval_dict,
    "attr": _eval_attr,
    "index": _eval_index,
    "func": _eval_func,
    "unary": _eval_unary,
    "binop": _eval_binop,
}
