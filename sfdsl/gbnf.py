"""A GBNF checker that follows llama.cpp's grammar parser, so a grammar the engine would reject is a compile error.

It accepts what ``llama-grammar.cpp`` parses: rules ``name ::= alternatives``
(names of letters, digits and ``-``), string literals and ``[...]`` classes with
the escapes ``\\x \\u \\U \\t \\r \\n \\\\ \\" \\[ \\]``, rule references,
``(...)`` groups, ``.``, the quantifiers ``* + ? {m} {m,} {m,n}``, ``#`` comments,
and token references ``<...>``. Like the engine it then requires every referenced
rule to be defined, a ``root`` rule, and no left recursion.

Example:
    >>> gbnf_problem('root ::= "yes" | "no"') is None
    True
    >>> gbnf_problem('root ::= answer').message
    "undefined rule 'answer'"
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GbnfProblem", "gbnf_problem"]

_ESCAPES = {"x": 2, "u": 4, "U": 8}
_SIMPLE_ESCAPES = set('trn\\"[]')


@dataclass(frozen=True)
class GbnfProblem:
    """Why a grammar is rejected, and where (0-based offset into the grammar text)."""

    message: str
    offset: int


class _Reject(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.problem = GbnfProblem(message, offset)


TERM = ""  # a terminal symbol; any other symbol is the name of the rule it refers to
Symbol = str
Sequence = list[Symbol]


@dataclass
class _Grammar:
    """Rules as llama.cpp stores them: groups and repetitions rewritten into generated rules."""

    rules: dict[str, list[Sequence]] = field(default_factory=dict)
    refs: list[tuple[str, int]] = field(default_factory=list)
    generated: int = 0

    def new_rule(self, alternatives: list[Sequence]) -> str:
        self.generated += 1
        name = f" {self.generated}"  # a space: no user rule can have this name
        self.rules[name] = alternatives
        return name


def gbnf_problem(text: str) -> GbnfProblem | None:
    """The first reason llama.cpp would reject ``text`` as a grammar, or None when it is accepted."""
    try:
        grammar = _Parser(text).parse()
        for name, offset in grammar.refs:
            if name not in grammar.rules:
                raise _Reject(f"undefined rule '{name}'", offset)
        if "root" not in grammar.rules:
            raise _Reject("the grammar has no 'root' rule", 0)
        _check_left_recursion(grammar)
    except _Reject as exc:
        return exc.problem
    return None


class _Parser:
    def __init__(self, text: str) -> None:
        self.src, self.pos, self.grammar = text, 0, _Grammar()

    def parse(self) -> _Grammar:
        self.space(newlines=True)
        while self.pos < len(self.src):
            self.rule()
        return self.grammar

    def rule(self) -> None:
        name = self.name()
        self.space(newlines=False)
        if not self.src.startswith("::=", self.pos):
            self.fail("expected '::=' after the rule name")
        self.pos += 3
        self.space(newlines=True)
        self.grammar.rules[name] = self.alternates(nested=False)
        if self.pos < len(self.src) and self.src[self.pos] not in "\r\n":
            self.fail(f"expected a newline or the end after rule '{name}'")
        self.space(newlines=True)

    def alternates(self, *, nested: bool) -> list[Sequence]:
        alternatives = [self.sequence(nested=nested)]
        while self.peek() == "|":
            self.pos += 1
            self.space(newlines=True)
            alternatives.append(self.sequence(nested=nested))
        return alternatives

    def sequence(self, *, nested: bool) -> Sequence:
        items: Sequence = []
        last = len(items)  # where the last item's symbols start, as llama.cpp's last_sym_start
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch in "*+?{":
                if last == len(items):
                    self.fail(f"'{ch}' needs an item before it")
                low, high = (0, -1) if ch == "*" else (1, -1) if ch == "+" else (0, 1) if ch == "?" else self.braces()
                if ch != "{":
                    self.pos += 1
                items[last:] = self.repeat(items[last:], low, high)
                self.space(newlines=nested)
                continue
            last = len(items)
            if ch == '"':
                self.pos += 1
                while self.peek() != '"':
                    self.char()
                    items.append(TERM)
                self.pos += 1
            elif ch == "[":
                self.pos += 1
                if self.peek() == "^":
                    self.pos += 1
                while self.peek() != "]":
                    self.char()
                    if self.peek() == "-" and self.peek(1) not in ("]", ""):
                        self.pos += 1
                        self.char()
                self.pos += 1
                items.append(TERM)
            elif _word_char(ch):
                offset = self.pos
                name = self.name()
                self.grammar.refs.append((name, offset))
                items.append(name)
            elif ch == "(":
                self.pos += 1
                self.space(newlines=True)
                group = self.alternates(nested=True)
                if self.peek() != ")":
                    self.fail("expected ')'")
                self.pos += 1
                items.append(self.grammar.new_rule(group))
            elif ch == "." or ch == "<" or (ch == "!" and self.peek(1) == "<"):
                if ch != ".":
                    end = self.src.find(">", self.pos)
                    if end < 0:
                        self.fail("unclosed token reference '<'")
                    self.pos = end
                self.pos += 1
                items.append(TERM)
            else:
                break
            self.space(newlines=nested)
        return items

    def repeat(self, item: Sequence, low: int, high: int) -> Sequence:
        """``item{low,high}`` (high -1: unbounded) rewritten as llama.cpp does, with generated rules."""
        out = item * low
        optional = 1 if high < 0 else high - low
        previous = ""
        for i in range(optional):
            self.grammar.generated += 1
            name = f" {self.grammar.generated}"
            tail = [name if high < 0 else previous] if i > 0 or high < 0 else []
            self.grammar.rules[name] = [item + tail, []]
            previous = name
        return out + ([previous] if optional > 0 else [])

    def braces(self) -> tuple[int, int]:
        """Parse ``{m}``, ``{m,}`` or ``{m,n}`` and return (m, n), n -1 when unbounded."""
        self.pos += 1
        self.space(newlines=False)
        low = high = self.integer()
        self.space(newlines=False)
        if self.peek() == ",":
            self.pos += 1
            self.space(newlines=False)
            high = -1
            if self.peek().isdigit():
                high = self.integer()
                self.space(newlines=False)
        if self.peek() != "}":
            self.fail("expected '}'")
        self.pos += 1
        return low, high

    def integer(self) -> int:
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
        if start == self.pos:
            self.fail("expected a number")
        return int(self.src[start:self.pos])

    def char(self) -> None:
        ch = self.peek()
        if ch == "":
            self.fail("unexpected end of the grammar")
        if ch != "\\":
            self.pos += 1
            return
        kind = self.peek(1)
        if kind in _ESCAPES:
            digits = self.src[self.pos + 2:self.pos + 2 + _ESCAPES[kind]]
            if len(digits) != _ESCAPES[kind] or any(c not in "0123456789abcdefABCDEF" for c in digits):
                self.fail(f"'\\{kind}' needs {_ESCAPES[kind]} hex digits")
            self.pos += 2 + _ESCAPES[kind]
        elif kind in _SIMPLE_ESCAPES:
            self.pos += 2
        else:
            self.fail(f"unknown escape '\\{kind}'")

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.src) and _word_char(self.src[self.pos]):
            self.pos += 1
        if start == self.pos:
            self.fail("expected a rule name")
        return self.src[start:self.pos]

    def space(self, *, newlines: bool) -> None:
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            elif ch == "#":
                while self.pos < len(self.src) and self.src[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                return

    def peek(self, ahead: int = 0) -> str:
        i = self.pos + ahead
        return self.src[i] if i < len(self.src) else ""

    def fail(self, message: str) -> None:
        raise _Reject(message, self.pos)


def _word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "-")


def _check_left_recursion(grammar: _Grammar) -> None:
    """Reject left recursion exactly as llama.cpp's ``llama_grammar_detect_left_recursion`` does.

    Like llama.cpp, a rule counts as possibly empty only when one of its
    alternatives is empty as written (after rewriting), not when it derives
    the empty string through other rules.
    """
    visited: set[str] = set()
    may_be_empty: set[str] = set()

    def detect(name: str, in_progress: set[str]) -> bool:
        if name in in_progress:
            return True
        in_progress.add(name)
        alternatives = grammar.rules[name]
        if any(not seq for seq in alternatives):
            may_be_empty.add(name)
        for seq in alternatives:
            for symbol in seq:
                if symbol == TERM:
                    break
                if detect(symbol, in_progress):
                    return True
                if symbol not in may_be_empty:
                    break
        in_progress.discard(name)
        visited.add(name)
        return False

    for name in list(grammar.rules):
        if name not in visited and detect(name, set()):
            shown = f"rule '{name}'" if not name.startswith(" ") else "a repeated group that can match nothing"
            raise _Reject(f"{shown} is left-recursive, which llama.cpp does not support", 0)
