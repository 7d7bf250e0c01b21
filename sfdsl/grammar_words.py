"""What the grammar accepts where: its keywords by position, and expected tokens shown as literals.

Everything here is read from the LALR parse table, so it follows the grammar without lists kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lark.lexer import PatternStr

from sfdsl.grammar.loader import parser

MAX_LISTED = 5
#: Terminals shown in words rather than as literals.
TERMINAL_WORDS = {
    "NAME": "a name", "STRING": "a string", "NUMBER": "a number", "REGEX": "a /regex/", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'", "$END": "the end of the code",
}


@dataclass(frozen=True)
class Keywords:
    """Where each token may start something: the terminals that start a statement or an expression, and the
    words that start a step (`x = generate ...`), a statement, or an item of a file."""

    statement_starts: frozenset[str]
    expression_starts: frozenset[str]
    steps: tuple[str, ...]
    statements: tuple[str, ...]
    top_level: tuple[str, ...]


@lru_cache(maxsize=1)
def keywords() -> Keywords:
    """The keywords and start tokens of the grammar."""
    statement_starts = accepted_after("recipe a() { ") - {"RBRACE"}
    expression_starts = accepted_after("recipe a() { x = (")
    expression_words = set(_words(expression_starts))
    return Keywords(
        statement_starts=statement_starts,
        expression_starts=expression_starts,
        steps=tuple(w for w in _words(accepted_after("recipe a() { x = ")) if w not in expression_words),
        statements=_words(statement_starts),
        top_level=_words(accepted_after("")),
    )


def accepted_after(prefix: str) -> frozenset[str]:
    """The terminals the parser accepts right after ``prefix``."""
    interactive = parser().parse_interactive(prefix)
    interactive.exhaust_lexer()
    return frozenset(interactive.accepts())


def _words(terminals: frozenset[str]) -> tuple[str, ...]:
    texts = (_literal(name) for name in terminals)
    return tuple(sorted(t for t in texts if t is not None and t.isidentifier()))


def expected_hint(expected_terminals: frozenset[str]) -> str | None:
    """'expected ...' with the acceptable tokens as literals, or None when there are too many to list."""
    words = keywords()
    expected = set(expected_terminals)
    shown: list[str] = []
    if words.statement_starts <= expected:
        expected -= words.statement_starts
        shown.append("a statement")
    if words.expression_starts - {"NOT"} <= expected:
        expected -= words.expression_starts
        shown.append("an expression")
    shown += sorted(_terminal_text(t) for t in expected)
    if not shown or len(shown) > MAX_LISTED:
        return None
    return "expected " + (shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1])


def _terminal_text(name: str) -> str:
    literal = _literal(name)
    return TERMINAL_WORDS.get(name) or (f"'{literal}'" if literal is not None else name.lower())


def _literal(name: str) -> str | None:
    """The fixed text of a terminal such as '{' or 'return'; None for patterns and the end of input."""
    if name == "$END":
        return None
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return None
    return pattern.value if isinstance(pattern, PatternStr) else None
