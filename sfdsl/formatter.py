"""The canonical layout of .sf source (`sfrun fmt`): spacing, indentation and blank lines, nothing else.

Like gofmt, the formatter keeps the author's line breaks and rewrites everything between tokens: one space
around operators and after commas and colons, none inside brackets, two spaces of indentation per open block
or bracket line, at most one blank line in a row, one blank line between top-level items, no trailing
whitespace, trailing comments of consecutive lines aligned, one newline at the end. Comments stay where
they are; tokens, triple-quoted prompt text included, are copied byte for byte, so a formatted file parses to
the same AST.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lark import Token

from sfdsl.grammar.loader import parser
from sfdsl.parser import parse

INDENT = "  "
OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
CLOSERS = frozenset(OPENERS.values())
#: Tokens written without a space on either side.
TIGHT = frozenset({"DOT"})
#: Tokens written without a space before them.
NO_SPACE_BEFORE = frozenset({"COMMA", "COLON", "RPAR", "RSQB", "DOT"})
#: Tokens written without a space after them.
NO_SPACE_AFTER = frozenset({"LPAR", "LSQB", "DOT", "MINUS"})
#: Tokens after which `(` or `[` call or index (no space): `len(x)`, `xs[0]`, `list[str]`.
POSTFIX_BEFORE = frozenset({"NAME", "RPAR", "RSQB", "STRING"})
BINARY = frozenset({"+", "-", "*", "/", "%", "==", "!=", "<", ">", "<=", ">=", "in", "matches", "and", "or"})
#: A line ending with one of these continues on the next (the statement is not finished).
CONTINUED_AFTER = BINARY | {",", "=", ":", "->", ".", "not", "from", "by", "as", "using", "with", "after", "when",
                            "regex", "choice", "return", "yield", "next", "score", "abstain", "generate", "deepen",
                            "evaluate", "extract", "vote", "refine", "map", "call", "search", "cluster", "times"}
#: A line starting with one of these continues the line before.
CONTINUED_BEFORE = BINARY | {".", "using", "from", "by", "with", "after", "as", "times", "->"}


@dataclass
class _Line:
    """One source line: its tokens, its trailing (or only) comment, and whether a blank line preceded it."""

    items: list[Token] = field(default_factory=list)
    blank_before: bool = False
    comment: str | None = None


def format_source(text: str, *, file: str = "<string>") -> str:
    """The canonical layout of ``text``.

    Raises:
        CompileError: when ``text`` does not parse (a file with syntax errors is left to its author).
    """
    parse(text, file=file)
    tokens, marks = _tokens(text)
    return _render(_lines(text, tokens), marks)


def is_formatted(text: str, *, file: str = "<string>") -> bool:
    """Whether ``text`` is already in canonical layout."""
    return format_source(text, file=file) == text


@dataclass(frozen=True)
class _Marks:
    """Brackets whose spacing depends on the rule they belong to, by offset in the source."""

    args_open: frozenset[int]  # `(` of step arguments: `generate p (n: 3)`, unlike `len(x)`
    dict_braces: frozenset[int]  # `{` and `}` of dict literals: `{"a": 1}`, unlike blocks `{ return x }`


def _tokens(text: str) -> tuple[list[Token], _Marks]:
    """Every token of ``text`` (from the parser's contextual lexer), and the brackets to mark."""
    interactive = parser().parse_interactive(text)
    tokens = list(interactive.iter_parse())
    tree = interactive.feed_eof()
    nodes = [s for s in tree.iter_subtrees() if not s.meta.empty]
    args_open = frozenset(s.meta.start_pos for s in nodes if s.data == "args")
    dicts = [s for s in nodes if s.data == "dict_lit"]
    braces = frozenset([s.meta.start_pos for s in dicts] + [s.meta.end_pos - 1 for s in dicts])
    return tokens, _Marks(args_open=args_open, dict_braces=braces)


def _lines(text: str, tokens: list[Token]) -> list[_Line]:
    """Group the tokens, and the comments in the gaps between them, into source lines."""
    lines: list[_Line] = []
    current = _Line()
    end = 0
    for token in [*tokens, None]:
        start = len(text) if token is None else token.start_pos or 0
        rows = text[end:start].split("\n")
        for k, row in enumerate(rows):
            stripped = row.strip()
            if k > 0:
                if current.items or current.comment is not None:
                    lines.append(current)
                    current = _Line()
                if not stripped and (k < len(rows) - 1 or token is None):
                    current.blank_before = True
            if stripped.startswith("#"):
                current.comment = stripped.rstrip()
        if token is None:
            break
        current.items.append(token)
        end = token.end_pos or start
    if current.items or current.comment is not None:
        lines.append(current)
    return lines


def _render(lines: list[_Line], marks: _Marks) -> str:
    rows: list[tuple[str, str | None]] = []  # each output line: its code, and its trailing comment
    stack: list[tuple[int, str]] = []  # each open bracket: the line that opened it, and its type
    previous: _Line | None = None
    last_code: _Line | None = None
    for number, line in enumerate(lines):
        items = line.items
        leading = 0
        while leading < len(items) and items[leading].type in CLOSERS:
            leading += 1
        open_here = stack[: max(0, len(stack) - leading)]
        depth = len({opened for opened, _ in open_here})
        if items and not leading and last_code is not None and _continues(last_code.items[-1], items[0]) \
                and (not open_here or open_here[-1][1] == "LBRACE"):
            depth += 1
        if rows and _wants_blank(previous, line, stack):
            rows.append(("", None))
        body = _join(items, marks)
        if body:
            rows.append((INDENT * depth + body, line.comment))
        else:
            rows.append((INDENT * depth + (line.comment or ""), None))
        for token in items:
            if token.type in OPENERS:
                stack.append((number, token.type))
            elif token.type in CLOSERS and stack:
                stack.pop()
        previous = line
        last_code = line if items else last_code
    while rows and not rows[-1][0]:
        rows.pop()
    return "".join(line + "\n" for line in _aligned(rows))


def _aligned(rows: list[tuple[str, str | None]]) -> list[str]:
    """The lines, trailing comments of consecutive lines aligned in one column (two spaces after the
    longest code), as gofmt does."""
    out: list[str] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][1] is not None and "\n" not in rows[j][0]:
            j += 1
        if j == i:
            code, comment = rows[i]
            out.append(f"{code}  {comment}" if comment is not None else code)
            i += 1
            continue
        width = max(len(code) for code, _ in rows[i:j])
        out += [f"{code.ljust(width)}  {comment}" for code, comment in rows[i:j]]
        i = j
    return out


def _continues(last: Token, first: Token) -> bool:
    """Whether a line starting with ``first`` continues the statement of the line ending with ``last``."""
    return _value(last) in CONTINUED_AFTER or _value(first) in CONTINUED_BEFORE


def _value(token: Token) -> str:
    """A token's text when it is an operator, punctuation or keyword; "" for names, numbers and strings."""
    return "" if token.type in ("NAME", "NUMBER", "STRING", "REGEX") else str(token)


def _wants_blank(previous: _Line | None, line: _Line, stack: list[tuple[int, str]]) -> bool:
    """A blank line before ``line``: kept where the source had one, forced between top-level items."""
    if previous is None:
        return False
    opens_block = bool(previous.items) and previous.items[-1].type in OPENERS and previous.comment is None
    closes_block = bool(line.items) and line.items[0].type in CLOSERS
    if opens_block or closes_block:
        return False
    ends_item = not stack and bool(previous.items) and previous.items[-1].type == "RBRACE"
    return line.blank_before or ends_item


def _join(items: list[Token], marks: _Marks) -> str:
    """The tokens of one line with canonical spaces between them."""
    parts: list[str] = []
    for i, token in enumerate(items):
        if i > 0 and _space_between(items[i - 1], token, marks):
            parts.append(" ")
        parts.append(str(token))
    return "".join(parts)


def _space_between(left: Token, right: Token, marks: _Marks) -> bool:
    lt, rt = left.type, right.type
    if lt in NO_SPACE_AFTER or rt in NO_SPACE_BEFORE:
        return False
    if (lt == "LBRACE" and left.start_pos in marks.dict_braces) or (
            rt == "RBRACE" and right.start_pos in marks.dict_braces):
        return False
    if lt == "LBRACE":
        return rt != "RBRACE"
    if rt == "RBRACE":
        return True
    if rt in ("LPAR", "LSQB") and lt in POSTFIX_BEFORE:
        return rt == "LPAR" and right.start_pos in marks.args_open
    return True
