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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from sfdsl.templates.limits import DEFAULT_LIMITS, RenderGuard, RenderLimitExceeded, TemplateLimits
from sfdsl.templates.sizing import check_binop, check_call, check_filter
from sfdsl.values import NoAnswer, attr_of

__all__ = ["DEFAULT_LIMITS", "GUARD_KEY", "GuardedEnvironment", "RenderGuard", "RenderLimitExceeded",
           "TemplateLimits"]

GUARD_KEY = "sfdsl render guard"  # not an identifier, so no template can name it
LOOP_FILTER, CONCAT_FILTER = "_sf_loop", "_sf_concat"


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

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``x.field`` reads as in .sf expressions (``sfdsl.values.attr_of``): of a list, the field of each item;
        of a record, its field before any method of the same name. A missing answer is empty text."""
        if isinstance(obj, (list, dict)):
            try:
                found = attr_of(obj, attribute)
            except KeyError:
                pass
            else:
                return [v if not isinstance(v, NoAnswer) else "" for v in found] if isinstance(found, list) else found
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        guard = guard_of(context)
        guard.tick()
        check_binop(guard, operator, left, right)
        return guard.result(self.binop_table[operator](left, right), f"'{operator}'")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        guard = guard_of(context)
        guard.tick()
        name = getattr(obj, "__name__", type(obj).__name__)
        for value in (*args, *kwargs.values()):
            guard.allow_size(guard.size(value), f"an argument of {name}()")
        check_call(guard, obj, args, kwargs)
        nested = isinstance(obj, (Macro, LoopContext))
        if isinstance(obj, LoopContext) and args:
            args = (args[0] if isinstance(args[0], _Counted) else _Counted(guard, args[0], 0), *args[1:])
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
        node.iter = _counting(node.iter, weight)
        if node.recursive:
            _count_recursion(node, weight)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(items, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


@pass_context
def _loop_filter(context: Context, iterable: Any, weight: int) -> Iterator[Any]:
    return _Counted(guard_of(context), iterable, weight)


def _counting(expr: nodes.Node, weight: int) -> nodes.Filter:
    return nodes.Filter(expr, LOOP_FILTER, [nodes.Const(weight)], [], None, None, lineno=expr.lineno)


def _count_recursion(node: nodes.Node, weight: int) -> None:
    """Count the iterations of ``loop(children)`` in a recursive loop's body like its own."""
    for child in node.iter_child_nodes():
        if isinstance(child, nodes.For):
            continue  # inside it, `loop` is the inner loop
        if isinstance(child, nodes.Call) and isinstance(child.node, nodes.Name) and child.node.name == "loop" \
                and child.args:
            child.args[0] = _counting(child.args[0], weight)
        _count_recursion(child, weight)


class _Counted(Iterator[Any]):
    """An iterable whose every item counts as a loop iteration of ``weight`` characters."""

    def __init__(self, guard: RenderGuard, iterable: Iterable[Any], weight: int) -> None:
        self._guard, self._items, self._weight = guard, iter(iterable), weight

    def __next__(self) -> Any:
        item = next(self._items)
        self._guard.iterate(self._weight)
        return item


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


# ---------------------------------------------------------------- filters


def _guarded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so it takes the render context (so Jinja never folds it) and is checked first."""
    pass_arg = getattr(getattr(func, "jinja_pass_arg", None), "name", None)

    @pass_context
    @functools.wraps(func)
    def guarded(context: Context, *args: Any, **kwargs: Any) -> Any:
        guard = guard_of(context)
        guard.tick()
        if args and isinstance(args[0], Iterator):  # e.g. map(...): count it, then size it like a list
            args = (list(_Counted(guard, args[0], 0)), *args[1:])
        for value in (*args, *kwargs.values()):
            guard.allow_size(guard.size(value), f"an argument of filter '{name}'")
        check_filter(guard, name, args, kwargs)
        first = {"context": context, "eval_context": context.eval_ctx, "environment": context.environment}
        lead = (first[pass_arg],) if pass_arg in first else ()
        return guard.result(func(*lead, *args, **kwargs), f"filter '{name}'")

    return guarded
