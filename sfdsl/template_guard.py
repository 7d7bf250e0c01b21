"""Resource limits for prompt templates: a sandbox that bounds time, output, loops, recursion and growth.

Jinja's sandbox stops templates from reaching Python internals but not from
exhausting the machine: ``{{ 'a' * 10**9 }}``, nested ``range`` loops,
``lipsum(10**6)`` or a recursive macro all run unchecked, and Jinja even
constant-folds ``{{ 7 ** 99999999 }}`` while compiling. ``GuardedEnvironment``
closes those paths:

* nothing a user writes is evaluated at compile time: arithmetic operators are
  intercepted, every filter takes the render context and ``~`` is rewritten
  into a checked filter, so Jinja's optimizer can fold none of them;
* at render time every hook (calls, operators, filters, loop iterations,
  output) runs through a ``RenderGuard`` that enforces ``TemplateLimits``:
  a deadline, an output size, a total of loop iterations, a call depth and a
  budget of characters built along the way. Anything that could grow a value
  (``*``, ``+``, ``%``, ``center``, ``replace``, ``join``...) is sized before
  it runs, so no single step can allocate much more than the limits allow.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

GUARD_KEY = "sfdsl render guard"  # not an identifier, so no template can name it
LOOP_FILTER, CONCAT_FILTER = "_sf_loop", "_sf_concat"
_FORMAT_NUMBER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")


@dataclass(frozen=True)
class TemplateLimits:
    """What one render may use; every limit is per render."""

    timeout_s: float = 2.0
    max_output_chars: int = 1_000_000
    max_iterations: int = 100_000  # loop iterations, all loops together
    max_depth: int = 64  # nested macro calls and recursive loops
    max_work_chars: int = 16_000_000  # characters built by operators, filters and calls, all together
    max_int_bits: int = 100_000


DEFAULT_LIMITS = TemplateLimits()


class RenderLimitExceeded(Exception):
    """A render went past one of its ``TemplateLimits``."""


class RenderGuard:
    """The running totals of one render, checked at every hook."""

    def __init__(self, limits: TemplateLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.iterations = 0
        self.depth = 0
        self.work = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"template render exceeded its time limit of {self.limits.timeout_s:g} s")

    def iterate(self, weight: int) -> None:
        self.iterations += 1
        if self.iterations > self.limits.max_iterations:
            raise RenderLimitExceeded(f"template loops ran more than {self.limits.max_iterations} iterations")
        self.charge(weight)
        self.tick()

    def charge(self, chars: int) -> None:
        self.work += chars
        if self.work > self.limits.max_work_chars:
            raise RenderLimitExceeded(
                f"template built more than {self.limits.max_work_chars} characters of intermediate values")

    def allow_size(self, chars: int, what: str) -> None:
        """Refuse a value of ``chars`` characters before it is built."""
        if chars > self.limits.max_output_chars:
            raise RenderLimitExceeded(
                f"{what} would build about {chars} characters (limit {self.limits.max_output_chars})")

    def allow_width(self, value: Any, what: str) -> None:
        if isinstance(value, int) and abs(value) > self.limits.max_output_chars:
            raise RenderLimitExceeded(f"{what} width {value} is over the limit of {self.limits.max_output_chars}")

    def size(self, value: Any) -> int:
        """An upper estimate of ``str(value)``'s length, walking containers; stops early past the limit."""
        if isinstance(value, str):
            return len(value)
        cap, total, stack, steps = self.limits.max_output_chars, 0, [value], 0
        while stack and total <= cap:
            item = stack.pop()
            steps += 1
            if steps % 10_000 == 0:
                self.tick()
            if isinstance(item, (str, bytes, bytearray)):
                total += len(item) + 2
            elif isinstance(item, bool) or item is None:
                total += 5
            elif isinstance(item, int):
                total += item.bit_length() // 3 + 2
            elif isinstance(item, float):
                total += 24
            elif isinstance(item, dict):
                shown = getattr(item, "_shown", None)  # a record renders as its primary value
                if isinstance(shown, str):
                    total += len(shown)
                else:
                    total += 2 + 4 * len(item)
                    stack.extend(item.keys())
                    stack.extend(item.values())
            elif isinstance(item, (list, tuple, set, frozenset)):
                total += 2 + 2 * len(item)
                stack.extend(item)
            elif isinstance(item, Namespace):
                stack.append(dict(item._Namespace__attrs))  # type: ignore[attr-defined]
            else:
                total += 64
        return total

    def result(self, value: Any, what: str) -> Any:
        """Charge a value just built and refuse it when it is too large."""
        if isinstance(value, (str, list, tuple, bytes, dict)):
            size = len(value)
            self.charge(size)
            self.allow_size(size, what)
        elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > self.limits.max_int_bits:
            raise RenderLimitExceeded(f"{what} built an integer of {value.bit_length()} bits")
        return value


def guard_of(context: Context) -> RenderGuard:
    guard = context.get(GUARD_KEY)
    if not isinstance(guard, RenderGuard):
        raise RenderLimitExceeded("templates render only through sfdsl.templates.render")
    return guard


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every user-reachable operation bounded by the render's guard."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters = {name: _guarded_filter(name, f) for name, f in DEFAULT_FILTERS.items()}
        self.filters[LOOP_FILTER] = _loop_filter
        self.filters[CONCAT_FILTER] = _concat_filter

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Rewriter().visit(super()._parse(source, name, filename))  # type: ignore[no-any-return]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        guard = guard_of(context)
        guard.tick()
        _check_binop(guard, operator, left, right)
        return guard.result(self.binop_table[operator](left, right), f"'{operator}'")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        guard = guard_of(context)
        guard.tick()
        name = getattr(obj, "__name__", type(obj).__name__)
        for value in (*args, *kwargs.values()):
            guard.allow_size(guard.size(value), f"an argument of {name}()")
        _check_call(guard, obj, args, kwargs)
        nested = isinstance(obj, (Macro, LoopContext))
        if isinstance(obj, LoopContext) and args:
            args = (_counted(guard, args[0], 0), *args[1:])
        if nested:
            guard.depth += 1
            if guard.depth > guard.limits.max_depth:
                raise RenderLimitExceeded(f"template calls nest deeper than {guard.limits.max_depth} levels")
        try:
            return guard.result(super().call(context, obj, *args, **kwargs), f"{name}()")
        finally:
            if nested:
                guard.depth -= 1


# ---------------------------------------------------------------- rewriting the parsed template


class _Rewriter(NodeTransformer):
    """Counts every loop iteration and checks every ``~`` concatenation."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        weight = sum(len(d.data) for d in node.find_all(nodes.TemplateData))
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [nodes.Const(weight)], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(items, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


@pass_context
def _loop_filter(context: Context, iterable: Any, weight: int) -> Iterator[Any]:
    return _counted(guard_of(context), iterable, weight)


def _counted(guard: RenderGuard, iterable: Iterable[Any], weight: int) -> Iterator[Any]:
    for item in iterable:
        guard.iterate(weight)
        yield item


@pass_context
def _concat_filter(context: Context, parts: list[Any]) -> str:
    guard = guard_of(context)
    guard.tick()
    guard.allow_size(guard.size(parts), "'~'")
    return guard.result("".join(str(p) for p in parts), "'~'")  # type: ignore[no-any-return]


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    guard = guard_of(context)
    guard.tick()
    size = guard.size(value)
    guard.allow_size(size, "an output expression")
    guard.charge(size)
    return value


# ---------------------------------------------------------------- sizing operations before they run


def _check_binop(guard: RenderGuard, operator: str, left: Any, right: Any) -> None:
    if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
        if left.bit_length() * right > guard.limits.max_int_bits:
            raise RenderLimitExceeded(f"'**' would build an integer of about {left.bit_length() * right} bits")
    elif operator == "*":
        seq, count = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, (str, list, tuple, bytes)) and isinstance(count, int):
            guard.allow_size(len(seq) * count, "'*'")
        elif isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > guard.limits.max_int_bits:
            raise RenderLimitExceeded("'*' would build an integer over the size limit")
    elif operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        guard.allow_size(len(left) + len(right), "'+'")
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(guard, left, right)


def _check_percent_format(guard: RenderGuard, fmt: str, args: Any) -> None:
    for width, precision in _FORMAT_NUMBER.findall(fmt):
        for number in (width, precision):
            if number and len(number) > 9:
                raise RenderLimitExceeded(f"format width {number} is over the limit")
            if number:
                guard.allow_width(int(number), "format")
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else (args,)
    for value in values:
        guard.allow_width(value, "format")
    guard.allow_size(len(fmt) + guard.size(args), "'%'")


def _check_brace_format(guard: RenderGuard, fmt: str, args: Iterable[Any]) -> None:
    try:
        specs = [spec for _, _, spec, _ in string.Formatter().parse(fmt) if spec]
    except ValueError:
        return  # str.format itself reports the malformed string
    for spec in specs:
        for number in re.findall(r"\d+", spec):
            if len(number) > 9:
                raise RenderLimitExceeded(f"format width {number} is over the limit")
            guard.allow_width(int(number), "format")
    for value in args:
        guard.allow_width(value, "format")


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "to_bytes"})
_REFUSED_METHODS = frozenset({"translate", "maketrans"})


def _check_call(guard: RenderGuard, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    name = getattr(obj, "__name__", "")
    owner = getattr(obj, "__self__", None)
    wrapped = getattr(obj, "__wrapped__", None)  # the sandbox wraps str.format
    if wrapped is not None and isinstance(getattr(wrapped, "__self__", None), str):
        values = list(args) + list(kwargs.values())
        if name == "format_map" and args and isinstance(args[0], dict):
            values = list(args[0].values())
        _check_brace_format(guard, wrapped.__self__, values)
        return
    if name == "generate_lorem_ipsum":
        try:
            bound = inspect.signature(obj).bind(*args, **kwargs)
        except TypeError:
            return  # the call itself reports the bad arguments
        bound.apply_defaults()
        n, most = bound.arguments["n"], bound.arguments["max"]
        if isinstance(n, int) and isinstance(most, int):
            guard.allow_size(n * max(most, 1) * 12, "lipsum()")
        return
    if not isinstance(owner, (str, bytes, bytearray, int)):
        return
    if name in _REFUSED_METHODS:
        raise RenderLimitExceeded(f"templates may not call {name}()")
    if name in _WIDTH_METHODS:
        for value in (*args, *kwargs.values()):
            guard.allow_width(value, f"{name}()")
        if name == "expandtabs" and isinstance(owner, str):
            tab = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tab, int):
                guard.allow_size(len(owner) + owner.count("\t") * tab, "expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _check_replace(guard, owner, args[0], args[1])
    elif name == "join" and args and not isinstance(owner, int):
        guard.allow_size(guard.size(args[0]) + _count(args[0]) * len(owner), "join()")


def _check_replace(guard: RenderGuard, text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        guard.allow_size(len(text) + hits * len(new), "replace()")


def _count(value: Any) -> int:
    return len(value) if isinstance(value, (list, tuple, str, dict, set)) else 0


# ---------------------------------------------------------------- filters


def _filter_checks(guard: RenderGuard, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    value, rest = (args[0] if args else None), args[1:]

    def arg(index: int, key: str, default: Any = None) -> Any:
        return rest[index] if len(rest) > index else kwargs.get(key, default)

    if name == "center":
        guard.allow_width(arg(0, "width", 80), "center")
    elif name == "indent":
        width = arg(0, "width", 4)
        per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
        guard.allow_width(per_line, "indent")
        guard.allow_size(guard.size(value) + (str(value).count("\n") + 1) * per_line, "indent")
    elif name == "format":
        _check_percent_format(guard, str(value), tuple(rest) or dict(kwargs))
    elif name in ("batch", "slice"):
        guard.allow_width(arg(0, "linecount" if name == "batch" else "slices", 1), name)
    elif name == "replace":
        _check_replace(guard, str(value), arg(0, "old"), arg(1, "new"))
    elif name == "wordwrap":
        wrap = arg(3, "wrapstring") or "\n"
        guard.allow_size(guard.size(value) * (1 + len(str(wrap))), "wordwrap")
    elif name == "join":
        guard.allow_size(guard.size(value) + _count(value) * len(str(arg(0, "d", ""))), "join")
    elif name == "sum" and not isinstance(arg(1, "start", 0), (int, float)) and _count(value) > 1000:
        raise RenderLimitExceeded("sum of more than 1000 non-numbers is refused (quadratic cost)")


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so it takes the render context (so Jinja never folds it) and is checked first."""
    pass_arg = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

    @pass_context
    @functools.wraps(func)
    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        guard = guard_of(context)
        guard.tick()
        if args and isinstance(args[0], Iterator):  # e.g. map(...): count it, then size it like a list
            args = (list(_counted(guard, args[0], 0)), *args[1:])
        for value in (*args, *kwargs.values()):
            guard.allow_size(guard.size(value), f"an argument of filter '{name}'")
        _filter_checks(guard, name, args, kwargs)
        first = {"context": context, "eval_context": context.eval_ctx, "environment": context.environment}
        lead = (first[pass_arg],) if pass_arg in first else ()
        return guard.result(func(*lead, *args, **kwargs), f"filter '{name}'")

    return guarded
