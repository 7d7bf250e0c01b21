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


@dataclass
class _Element:
    ref: str | None = None  # a rule reference
    group: list[list[_Element]] | None = None  # a parenthesised alternation
    nullable_self: bool = False  # matches the empty string by itself (an empty literal)
    optional: bool = False  # quantified with *, ? or {0,...}


@dataclass
class _Grammar:
    rules: dict[str, list[list[_Element]]] = field(default_factory=dict)
    refs: list[tuple[str, int]] = field(default_factory=list)


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

    def alternates(self, *, nested: bool) -> list[list[_Element]]:
        alternatives = [self.sequence(nested=nested)]
        while self.peek() == "|":
            self.pos += 1
            self.space(newlines=True)
            alternatives.append(self.sequence(nested=nested))
        return alternatives

    def sequence(self, *, nested: bool) -> list[_Element]:
        items: list[_Element] = []
        while self.pos < len(self.src):
            ch = self.src[self.pos]
            if ch == '"':
                self.pos += 1
                empty = self.peek() == '"'
                while self.peek() != '"':
                    self.char()
                self.pos += 1
                items.append(_Element(nullable_self=empty))
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
                items.append(_Element())
            elif _word_char(ch):
                offset = self.pos
                name = self.name()
                self.grammar.refs.append((name, offset))
                items.append(_Element(ref=name))
            elif ch == "(":
                self.pos += 1
                self.space(newlines=True)
                group = self.alternates(nested=True)
                if self.peek() != ")":
                    self.fail("expected ')'")
                self.pos += 1
                items.append(_Element(group=group))
            elif ch in ".<":
                if ch == "<":
                    end = self.src.find(">", self.pos)
                    if end < 0:
                        self.fail("unclosed token reference '<'")
                    self.pos = end
                self.pos += 1
                items.append(_Element())
            elif ch in "*+?{":
                if not items:
                    self.fail(f"'{ch}' needs an item before it")
                items[-1].optional = items[-1].optional or ch in "*?" or (ch == "{" and self.braces() == 0)
                if ch != "{":
                    self.pos += 1
            else:
                break
            self.space(newlines=nested)
        return items

    def braces(self) -> int:
        """Parse ``{m}``, ``{m,}`` or ``{m,n}`` and return m."""
        self.pos += 1
        self.space(newlines=False)
        low = self.integer()
        self.space(newlines=False)
        if self.peek() == ",":
            self.pos += 1
            self.space(newlines=False)
            if self.peek().isdigit():
                self.integer()
                self.space(newlines=False)
        if self.peek() != "}":
            self.fail("expected '}'")
        self.pos += 1
        return low

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
    """Reject a rule that can reach itself before consuming any input, as llama.cpp does."""
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, alternatives in grammar.rules.items():
            if name not in nullable and any(_seq_nullable(seq, nullable) for seq in alternatives):
                nullable.add(name)
                changed = True
    firsts = {name: _first_refs(alternatives, nullable) for name, alternatives in grammar.rules.items()}
    for start in grammar.rules:
        seen: set[str] = set()
        stack = list(firsts[start])
        while stack:
            name = stack.pop()
            if name == start:
                raise _Reject(f"rule '{start}' is left-recursive, which llama.cpp does not support", 0)
            if name not in seen and name in firsts:
                seen.add(name)
                stack.extend(firsts[name])


def _element_nullable(element: _Element, nullable: set[str]) -> bool:
    if element.optional or element.nullable_self:
        return True
    if element.ref is not None:
        return element.ref in nullable
    if element.group is not None:
        return any(_seq_nullable(seq, nullable) for seq in element.group)
    return False


def _seq_nullable(seq: list[_Element], nullable: set[str]) -> bool:
    return all(_element_nullable(e, nullable) for e in seq)


def _first_refs(alternatives: list[list[_Element]], nullable: set[str]) -> set[str]:
    refs: set[str] = set()
    for seq in alternatives:
        for element in seq:
            if element.ref is not None:
                refs.add(element.ref)
            elif element.group is not None:
                refs |= _first_refs(element.group, nullable)
            if not _element_nullable(element, nullable):
                break
    return refs
