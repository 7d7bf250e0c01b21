"""Sizing template operations before they run: what a `*`, a format, a call or a filter would build."""

from __future__ import annotations

import inspect
import re
import string
from collections.abc import Iterable
from typing import Any

from sfdsl.templates.limits import RenderGuard, RenderLimitExceeded

_FORMAT_NUMBER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d*)(?:\.(\d*))?")


def check_binop(guard: RenderGuard, operator: str, left: Any, right: Any) -> None:
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


def check_call(guard: RenderGuard, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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


def check_filter(guard: RenderGuard, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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
