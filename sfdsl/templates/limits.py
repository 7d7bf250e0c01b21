"""The limits of one template render and the guard that keeps a render within them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jinja2.utils import Namespace


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
