"""Compile output constraints (a set of choices, a regex) into GBNF grammars.

Every backend that supports grammars receives GBNF, so ``choices`` and
``regex`` constraints from recipes are compiled here, once, for all backends.

The regex subset is the one that maps onto GBNF without backtracking tricks:
literals, escapes (``\\d \\w \\s \\D \\W \\S \\n \\t \\xHH \\uHHHH`` and escaped
punctuation), ``.``, character classes (ranges, negation), groups (``(...)``,
``(?:...)``, ``(?P<name>...)``), alternation, and the quantifiers ``? * +
{m} {m,} {m,n}`` (a trailing lazy ``?`` is accepted and ignored: the whole
output must match, so laziness cannot change the language). A leading ``^``
and trailing ``$`` are accepted; any other anchor, look-around, back-reference
or flag group raises :class:`UnsupportedRegex`.

Example:
    >>> gbnf_for_choices(["Yes", "No"])
    'root ::= "Yes" | "No"'
    >>> gbnf_for_regex(r"[0-9]+(\\.[0-9]{1,2})?")
    'root ::= [0-9]+ ("." [0-9]{1,2})?'
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["UnsupportedRegex", "gbnf_for_choices", "gbnf_for_regex", "gbnf_literal"]

_CLASS_ESCAPES: dict[str, str] = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t\\n\\r\\x0B\\x0C"}
_CHAR_ESCAPES: dict[str, str] = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "0": "\0"}
_MAX_REPEAT = 10_000


class UnsupportedRegex(ValueError):
    """Raised when a regex uses syntax outside the GBNF-compatible subset."""

    def __init__(self, pattern: str, pos: int, reason: str) -> None:
        self.pattern = pattern
        self.pos = pos
        super().__init__(f"unsupported regex {pattern!r} at offset {pos}: {reason}")


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal, escaping quotes, backslashes and controls."""
    out = []
    for ch in text:
        if ch in "\"\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def gbnf_for_choices(choices: Iterable[str]) -> str:
    """A grammar whose language is exactly ``choices`` (duplicates removed, order kept)."""
    unique = list(dict.fromkeys(choices))
    if not unique:
        raise ValueError("a choice constraint needs at least one choice")
    return "root ::= " + " | ".join(gbnf_literal(c) for c in unique)


def gbnf_for_regex(pattern: str) -> str:
    """A grammar whose language is the strings that fully match ``pattern``."""
    body = _RegexCompiler(pattern).compile()
    return f"root ::= {body}"


def _class_char(ch: str) -> str:
    """One character inside a GBNF ``[...]`` class, escaped when not alphanumeric."""
    if ch.isascii() and ch.isalnum():
        return ch
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


class _RegexCompiler:
    """Recursive-descent translation of one regex into a GBNF expression."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def compile(self) -> str:
        src = self.pattern
        if src.startswith("^"):
            self.pos = 1
        end = len(src)
        if src.endswith("$") and not src.endswith("\\$") and end > self.pos:
            end -= 1
        self.end = end
        expr = self._alternation()
        if self.pos != self.end:
            self._fail("unbalanced ')'")
        return expr

    # -- grammar ---------------------------------------------------------

    def _alternation(self) -> str:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return branches[0] if len(branches) == 1 else " | ".join(branches)

    def _sequence(self) -> str:
        items: list[tuple[str, str | None]] = []  # (gbnf, literal text if a bare literal)
        while self.pos < self.end and self._peek() not in "|)":
            atom, literal = self._atom()
            quant = self._quantifier()
            if quant:
                items.append((atom + quant, None))
            else:
                items.append((atom, literal))
        return self._join(items)

    @staticmethod
    def _join(items: list[tuple[str, str | None]]) -> str:
        if not items:
            return '""'
        parts: list[str] = []
        run: list[str] = []
        for gbnf, literal in items:
            if literal is not None:
                run.append(literal)
                continue
            if run:
                parts.append(gbnf_literal("".join(run)))
                run = []
            parts.append(gbnf)
        if run:
            parts.append(gbnf_literal("".join(run)))
        return " ".join(parts)

    def _atom(self) -> tuple[str, str | None]:
        ch = self._peek()
        start = self.pos
        self.pos += 1
        if ch == "(":
            self._group_prefix()
            inner = self._alternation()
            if self._peek() != ")":
                self.pos = start
                self._fail("unclosed group")
            self.pos += 1
            return f"({inner})", None
        if ch == "[":
            return self._char_class(), None
        if ch == ".":
            return "[^\\n]", None
        if ch == "\\":
            return self._escape(in_class=False)
        if ch in "*+?" or (ch == "{" and self._brace_ahead(start)):
            self.pos = start
            self._fail("quantifier without anything to repeat")
        if ch in "^$":
            self.pos = start
            self._fail("anchors are only supported at the very start and end")
        return gbnf_literal(ch), ch

    def _group_prefix(self) -> None:
        if self._peek() != "?":
            return
        rest = self.pattern[self.pos : self.end]
        if rest.startswith("?:"):
            self.pos += 2
        elif rest.startswith("?P<"):
            close = rest.find(">")
            if close < 0:
                self._fail("unterminated group name")
            self.pos += close + 1
        else:
            self._fail("look-arounds, flags and other (?...) groups are not supported")

    def _quantifier(self) -> str:
        ch = self._peek()
        if ch in ("?", "*", "+"):
            self.pos += 1
            quant = ch
        elif ch == "{" and self._brace_ahead():
            quant = self._braces()
        else:
            return ""
        if self._peek() == "?":
            self.pos += 1  # lazy: same language under full-match semantics
        if self._peek() in ("*", "+", "?", "{"):
            self._fail("stacked or possessive quantifiers are not supported")
        return quant

    def _brace_ahead(self, at: int | None = None) -> bool:
        rest = self.pattern[self.pos if at is None else at : self.end]
        close = rest.find("}")
        return close > 1 and all(c.isdigit() or c == "," for c in rest[1:close])

    def _braces(self) -> str:
        close = self.pattern.index("}", self.pos)
        spec = self.pattern[self.pos + 1 : close]
        lo_s, comma, hi_s = spec.partition(",")
        if not lo_s:
            self._fail("{,n} needs a lower bound")
        lo = int(lo_s)
        hi = int(hi_s) if hi_s else None
        if (hi is not None and hi < lo) or max(lo, hi or 0) > _MAX_REPEAT:
            self._fail(f"bad repetition bounds {{{spec}}}")
        self.pos = close + 1
        if not comma:
            return f"{{{lo}}}"
        return f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}"

    def _escape(self, *, in_class: bool) -> tuple[str, str | None]:
        if self.pos >= self.end:
            self._fail("trailing backslash")
        ch = self.pattern[self.pos]
        self.pos += 1
        if ch in _CLASS_ESCAPES:
            body = _CLASS_ESCAPES[ch]
            return (body if in_class else f"[{body}]"), None
        if ch in "DWS":
            if in_class:
                self._fail(f"\\{ch} inside a character class is not supported")
            return f"[^{_CLASS_ESCAPES[ch.lower()]}]", None
        if ch in _CHAR_ESCAPES:
            lit = _CHAR_ESCAPES[ch]
        elif ch in "xu":
            width = 2 if ch == "x" else 4
            digits = self.pattern[self.pos : self.pos + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                self._fail(f"bad \\{ch} escape")
            self.pos += width
            lit = chr(int(digits, 16))
        elif ch.isalnum():
            self.pos -= 2
            self._fail(f"escape \\{ch} is not supported (anchors and back-references are not regular)")
        else:
            lit = ch
        return (_class_char(lit) if in_class else gbnf_literal(lit)), lit

    def _char_class(self) -> str:
        start = self.pos - 1
        negate = self._peek() == "^"
        if negate:
            self.pos += 1
        parts: list[str] = []
        first = True
        while True:
            if self.pos >= self.end:
                self.pos = start
                self._fail("unclosed character class")
            ch = self.pattern[self.pos]
            if ch == "]" and not first:
                self.pos += 1
                break
            first = False
            low_text, low_char = self._class_member()
            if low_char is not None and self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                high_text, high_char = self._class_member()
                if high_char is None or high_char < low_char:
                    self._fail("bad character range")
                parts.append(f"{low_text}-{high_text}")
            else:
                parts.append(low_text)
        return "[" + ("^" if negate else "") + "".join(parts) + "]"

    def _class_member(self) -> tuple[str, str | None]:
        ch = self.pattern[self.pos]
        self.pos += 1
        if ch == "\\":
            return self._escape(in_class=True)
        if ch == "[" and self._peek() == ":":
            self._fail("POSIX classes are not supported")
        return _class_char(ch), ch

    # -- helpers ---------------------------------------------------------

    def _peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.pattern[i] if i < self.end else ""

    def _fail(self, reason: str) -> None:
        raise UnsupportedRegex(self.pattern, self.pos, reason)
