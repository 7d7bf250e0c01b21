"""A forgiving scanner for editors: the tokens of a .sf text and what each name means where it stands.

The parser stops at the first syntax error; an editor needs answers while the text is broken. This scanner
never fails: it splits any text into tokens and reads each name's role from the tokens around it
(``generate NAME`` names a prompt, ``using NAME`` a model, ``call NAME`` a recipe, ``x.NAME`` a field...).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sfdsl.grammar.loader import KEYWORDS
from sfdsl.registry import KINDS

_TOKEN = re.compile(r'''
    (?P<comment>\#[^\n]*)
  | (?P<string>"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z)|"(?:[^"\\\n]|\\.)*"?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<op>->|==|!=|<=|>=|[-+*%<>=(){}\[\],.:])
  | (?P<slash>/)
  | (?P<other>[^\s])
''', re.VERBOSE)
_REGEX = re.compile(r"/(?![/*\s])(?:[^/\\\n]|\\.)+/[ims]*")
#: Tokens after which `/` divides rather than opening a /regex/.
_OPERAND_ENDS = frozenset({"name", "number", "string"})

#: The word that opens each step kind (``vote`` opens both vote kinds).
STEP_WORDS: dict[str, list[str]] = {}
for _kind in KINDS.values():
    STEP_WORDS.setdefault(_kind.syntax.split()[0], []).append(_kind.name)


@dataclass(frozen=True)
class Tok:
    """One token: kind (name, number, string, regex, comment, op, other), text and offsets."""

    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Role:
    """What a name token means: its role, the recipe it sits in, and for fields the names before the dot."""

    role: str  # prompt | model | recipe | step | mode | arg | field | keyword | label | name | decl_*
    name: str
    recipe: str | None
    base: tuple[str, ...] = ()


def scan(text: str) -> list[Tok]:
    """Every token of ``text``; comments included, whitespace skipped. Never fails."""
    tokens: list[Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.search(text, pos)
        if match is None:
            break
        kind = match.lastgroup or "other"
        if kind == "slash":
            previous = next((t for t in reversed(tokens) if t.kind != "comment"), None)
            regex = _REGEX.match(text, match.start())
            divides = previous is not None and ((previous.kind in _OPERAND_ENDS and previous.text not in KEYWORDS)
                                                or previous.text in (")", "]"))
            if regex is not None and not divides:
                tokens.append(Tok("regex", regex.group(), regex.start(), regex.end()))
                pos = regex.end()
                continue
            kind = "op"
        tokens.append(Tok(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


class Lexicon:
    """A scanned text with offset ↔ position conversion and the role of every name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.all_tokens = scan(text)
        self.tokens = [t for t in self.all_tokens if t.kind != "comment"]
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    # ------------------------------------------------------------ positions

    def offset(self, line: int, character: int) -> int:
        """The offset of a 0-based (line, character) position, clamped to the text."""
        if line >= len(self._line_starts):
            return len(self.text)
        start = self._line_starts[max(0, line)]
        end = self._line_starts[line + 1] - 1 if line + 1 < len(self._line_starts) else len(self.text)
        return min(start + max(0, character), end)

    def position(self, offset: int) -> tuple[int, int]:
        """The 0-based (line, character) of an offset."""
        line = bisect_right(self._line_starts, offset) - 1
        return line, offset - self._line_starts[line]

    def index_at(self, offset: int, *, touching: bool = True) -> int | None:
        """The index of the token under ``offset`` (or, with ``touching``, ending right at it)."""
        for i, tok in enumerate(self.tokens):
            if tok.start <= offset < tok.end or (touching and tok.end == offset and tok.kind == "name"):
                return i
            if tok.start > offset:
                break
        return None

    def before(self, offset: int) -> int:
        """The index of the last token ending at or before ``offset`` (-1 when none)."""
        found = -1
        for i, tok in enumerate(self.tokens):
            if tok.end > offset:
                break
            found = i
        return found

    def comment_or_string_at(self, offset: int) -> Tok | None:
        """The comment or string token that contains ``offset``, if any."""
        for tok in self.all_tokens:
            if tok.start < offset < tok.end or (tok.start < offset == tok.end and tok.kind == "comment"):
                return tok if tok.kind in ("comment", "string") else None
        return None

    # ------------------------------------------------------------ structure

    @cached_property
    def recipes(self) -> list[tuple[str, int, int, int]]:
        """Each recipe: its name, the index of its name token, and the offsets its text spans."""
        found: list[tuple[str, int, int, int]] = []
        depth, current = 0, None
        for i, tok in enumerate(self.tokens):
            if tok.text == "recipe" and depth == 0 and i + 1 < len(self.tokens) and self.tokens[i + 1].kind == "name":
                if current is not None:
                    found.append((current[0], current[1], current[2], tok.start))
                current = (self.tokens[i + 1].text, i + 1, tok.start)
            elif tok.text in ("{", "(", "["):
                depth += 1 if tok.text == "{" else 0
            elif tok.text == "}":
                depth = max(0, depth - 1)
                if depth == 0 and current is not None:
                    found.append((current[0], current[1], current[2], tok.end))
                    current = None
        if current is not None:
            found.append((current[0], current[1], current[2], len(self.text)))
        return found

    @cached_property
    def _recipe_starts(self) -> list[int]:
        return [start for _, _, start, _ in self.recipes]

    def recipe_at(self, offset: int) -> str | None:
        """The name of the recipe whose text holds ``offset``."""
        i = bisect_right(self._recipe_starts, offset) - 1
        if i >= 0:
            name, _, start, end = self.recipes[i]
            if start <= offset <= end:
                return name
        return None

    def open_bracket(self, index: int) -> int | None:
        """The index of the innermost bracket still open just after token ``index``."""
        depth = 0
        for i in range(index, -1, -1):
            text = self.tokens[i].text
            if text in (")", "]", "}"):
                depth += 1
            elif text in ("(", "[", "{"):
                if depth == 0:
                    return i
                depth -= 1
        return None

    def statement_start(self, index: int) -> int:
        """The index of the first token of the statement holding token ``index`` (same bracket level)."""
        i = index
        while i > 0:
            prev = self.tokens[i - 1]
            if prev.text in ("{", "}"):
                break
            line_break = "\n" in self.text[prev.end:self.tokens[i].start]
            if line_break and self._starts_statement(i):
                break
            i -= 1
        return i

    def _starts_statement(self, i: int) -> bool:
        tok = self.tokens[i]
        following = self.tokens[i + 1].text if i + 1 < len(self.tokens) else ""
        keywords = ("return", "abstain", "if", "prompt", "model", "stop", "next", "score", "yield", "recipe",
                    "import", "else")
        return tok.text in keywords or (tok.kind == "name" and following == "=")

    def step_of(self, index: int, *, inclusive: bool = False) -> tuple[str, str] | None:
        """The step kind and mode of the statement holding token ``index`` (the tokens before it, and with
        ``inclusive`` the token itself), e.g. for the `(` of its arguments; None when it is no step."""
        start = self.statement_start(index)
        words = [t for t in self.tokens[start:index + 1 if inclusive else index] if t.kind == "name"]
        texts = [t.text for t in words]
        for position, word in enumerate(texts):
            kinds = STEP_WORDS.get(word)
            if not kinds:
                continue
            kind_name = "vote_times" if word == "vote" and "times" in texts else kinds[0]
            kind = KINDS[kind_name]
            modes = list(kind.modes or {})
            rest = texts[position + 1:]
            mode = next((m for m in rest if m in modes), "") if modes != [""] else ""
            return kind_name, mode
        return None

    # ------------------------------------------------------------ roles

    def role(self, index: int) -> Role:
        """What the name token ``index`` means where it stands."""
        tokens = self.tokens
        tok = tokens[index]
        recipe = self.recipe_at(tok.start)
        at: Callable[[int], str] = lambda k: tokens[k].text if 0 <= k < len(tokens) else ""  # noqa: E731
        prev, prev2, nxt = at(index - 1), at(index - 2), at(index + 1)
        rules: list[tuple[bool, str]] = [
            (prev in ("generate", "deepen") or (prev2 == "evaluate" and tokens[index - 1].kind == "name"),
             "prompt"),
            (prev == "using", "model"),
            (prev == "call" or (prev == "." and at(index - 3) == "call"), "recipe"),
            (prev == "recipe", "decl_recipe"),
            (prev == "prompt", "decl_prompt"),
            (prev == "model", "decl_model"),
            (prev in ("evaluate", "extract", "search", "by") or (prev == "=" and at(index - 3) == "model"), "mode"),
            (prev == ".", "field"),
            (prev in ("map", "as"), "decl_name"),
            (nxt == "=" and self.statement_start(index) == index, "decl_name"),
        ]
        for matched, role in rules:
            if matched:
                return self._made(role, tok, index, recipe)
        if tok.text in STEP_WORDS:
            return Role("step", tok.text, recipe)
        if nxt == ":":
            bracket = self.open_bracket(index - 1) if index > 0 else None
            if bracket is not None and tokens[bracket].text == "(":
                header = any(t.text == "recipe" for t in tokens[max(0, bracket - 2):bracket])
                return Role("decl_name" if header else "arg", tok.text, recipe)
            return Role("label", tok.text, recipe)
        return Role("name", tok.text, recipe)

    def _made(self, role: str, tok: Tok, index: int, recipe: str | None) -> Role:
        if role == "field":
            return Role(role, tok.text, recipe, self.chain(index - 1))
        if role == "recipe" and self.tokens[index - 1].text == ".":
            return Role(role, f"{self.tokens[index - 2].text}.{tok.text}", recipe)
        if role == "recipe" and index + 2 < len(self.tokens) and self.tokens[index + 1].text == "." \
                and self.tokens[index + 2].kind == "name":
            return Role(role, f"{tok.text}.{self.tokens[index + 2].text}", recipe)
        return Role(role, tok.text, recipe)

    def chain(self, dot: int) -> tuple[str, ...]:
        """The names of ``a.b.`` before the dot at index ``dot`` (empty when it is not a plain name chain)."""
        names: list[str] = []
        i = dot
        while i > 0 and self.tokens[i].text == "." and self.tokens[i - 1].kind == "name":
            names.insert(0, self.tokens[i - 1].text)
            i -= 2
        return tuple(names)

    def names(self) -> list[tuple[int, Role]]:
        """Every name token with its role."""
        return [(i, self.role(i)) for i, tok in enumerate(self.tokens) if tok.kind == "name"]
