"""Recipe regexes, matched by RE2 in time linear in the text; a pattern RE2 cannot run is refused when checked.

Python's ``re`` backtracks: ``/^(a+)+$/`` on 27 characters takes seconds, doubling with each one more. RE2
never backtracks, so it has no look-around and no back-references; such a pattern is a check-time error
(SF314), found by ``regex_problem``. Flags are those of a ``/regex/flags`` literal: ``i`` (ignore case),
``m`` (``^`` and ``$`` at line ends) and ``s`` (``.`` matches a newline). Classes like ``\\d`` and ``\\w``
are ASCII in RE2.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

#: Memory one compiled pattern may use (RE2's budget for its automata); a larger pattern is refused.
MAX_PATTERN_MEMORY = 8 << 20
#: The flags a /regex/ literal may carry.
FLAGS = "ims"

HINT = ("regexes run on RE2 (linear time): no look-around ((?=...), (?<=...)) or back-references (\\1); "
        "write \\z for the end of the text")


class RegexError(ValueError):
    """Raised when RE2 cannot compile a pattern."""


@lru_cache(maxsize=1024)
def compile_regex(pattern: str, flags: str = "") -> Any:
    """The compiled RE2 pattern for a ``/pattern/flags`` literal (cached).

    Raises:
        RegexError: when RE2 cannot run it.
    """
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PATTERN_MEMORY
    inline = "".join(sorted(set(flags) & set(FLAGS)))
    try:
        return re2.compile(f"(?{inline}){pattern}" if inline else pattern, options)
    except re2.error as exc:
        raise RegexError(_message(exc.args[0] if exc.args else "")) from None


def regex_problem(pattern: str, flags: str = "") -> str | None:
    """Why RE2 cannot run a pattern, or None when it can."""
    try:
        compile_regex(pattern, flags)
    except RegexError as exc:
        return str(exc)
    return None


def search(pattern: str, text: str, flags: str = "") -> bool:
    """Whether ``pattern`` occurs in ``text``.

    Raises:
        RegexError: when RE2 cannot run the pattern.
    """
    return compile_regex(pattern, flags).search(text) is not None


def finditer(pattern: str, text: str, flags: str = "") -> Any:
    """The matches of ``pattern`` in ``text``, left to right (``group``, ``start``, ``end`` as in ``re``).

    Raises:
        RegexError: when RE2 cannot run the pattern.
    """
    return compile_regex(pattern, flags).finditer(text)


def _message(raw: object) -> str:
    text = (raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)).strip()
    text = text or "invalid pattern"
    if "pattern too large" in text:
        return f"pattern too large for RE2 (more than {MAX_PATTERN_MEMORY >> 20} MiB of automaton)"
    return text
