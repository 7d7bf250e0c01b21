"""Syntax errors named by example: a table of typical mistakes, matched by parser state, gives coded diagnostics.

Like lark's ``match_examples``, each mistake is a few malformed snippets; the parser state and unexpected token
they fail with identify the mistake wherever it happens (the index is built once). Each maps to a stable code
(SF100-SF114), a message and a hint; expected tokens are shown as literals, and "code ended unexpectedly" at EOF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from lark import Token
from lark.exceptions import UnexpectedInput, UnexpectedToken

from sfdsl.diagnostics import Diagnostic, Span, did_you_mean
from sfdsl.grammar.loader import parser
from sfdsl.grammar_words import expected_hint, keywords

#: Habits from other languages, and what to write instead.
FOREIGN_WORDS = {
    "for": "loop over a list with `name = map x in list { ... yield ... }`",
    "while": "repeat with `name = refine first as current (max: N) { ... next ... }` and `stop when`",
    "def": "define recipes with `recipe name(input: type) { ... }`", "function": "define recipes with `recipe`",
    "let": "assign with `name = ...`", "var": "assign with `name = ...`", "const": "assign with `name = ...`",
    "elif": "write `else if`", "print": "return what you want to see: `return answer: ...`",
}
CHARACTER_HINTS = {
    "'": 'strings use double quotes: "..."', ";": "statements end at the end of the line, without ';'",
    "&": "write `and`", "|": "write `or`", "!": "write `not`, or '!=' to compare",
}
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">", "in", "matches")
OPENERS = {"LBRACE": "RBRACE", "LSQB": "RSQB", "LPAR": "RPAR"}
CLOSERS = {closer: opener for opener, closer in OPENERS.items()}

#: Tokens after which an expression must go on.
OPERATORS = frozenset({"+", "-", "*", "/", "%", "==", "!=", "<=", ">=", "<", ">", "=", "and", "or", "not", "in",
                       "matches", "."})


@dataclass(frozen=True)
class Failure:
    """Where and how parsing failed: the parser's own view, with the tokens and open brackets around it."""

    text: str
    file: str
    token: Token | None  # None when no token could be read (a bad character)
    offset: int
    line: int
    column: int
    state: int
    expected: frozenset[str]
    history: tuple[Token, ...]  # tokens accepted just before, most recent last
    open_brackets: tuple[Token, ...]  # '(' '[' '{' still open, outermost first

    def span(self, token: Token | None = None) -> Span:
        """The span of ``token`` (default: the unexpected token, or the bad character)."""
        token = token or self.token
        if token is None or token.type == "$END":
            return Span(file=self.file, line=self.line, column=self.column, end_line=self.line,
                        end_column=self.column + 1)
        return token_span(self.file, token)

    def last_line_history(self) -> list[Token]:
        """The accepted tokens on the line of the last one, oldest first."""
        line = self.history[-1].line if self.history else None
        return [t for t in self.history if t.line == line]


def token_span(file: str, token: Token) -> Span:
    """The source span a token covers."""
    line, column = token.line or 1, token.column or 1
    return Span(file=file, line=line, column=column, end_line=token.end_line or line,
                end_column=token.end_column or column + len(token))


Describe = Callable[[Failure], Diagnostic]


@dataclass(frozen=True)
class Mistake:
    """A common mistake: malformed examples and how to describe it."""

    examples: tuple[str, ...] | Callable[[], tuple[str, ...]]
    describe: Describe
    any_token: bool = False  # match by parser state alone, whatever the unexpected token

    def snippets(self) -> tuple[str, ...]:
        """The malformed examples (some are derived from the grammar's keywords)."""
        return self.examples() if callable(self.examples) else self.examples


def _statement_without_equals(f: Failure) -> Diagnostic:
    """`draft generate p`, `retrun draft`, `x = genrate p`, `return answer: extract number from x`."""
    before = f.last_line_history()
    word = before[-1] if before else None
    words = keywords()
    for i, tok in enumerate(before):
        if tok.type == "NAME" and str(tok) in words.steps and i > 0 and before[i - 1].type == "COLON":
            head = str(before[0])
            if head in ("return", "abstain"):
                return Diagnostic(code="SF109", message=f"the {tok} step cannot be a {head} field", span=f.span(tok),
                                  hint=f"assign it first: `x = {tok} ...`, then `{head} answer: x`")
    if len(before) >= 3 and before[-3].type == "EQUAL" and before[-2].type == "NAME":
        step = before[-2]
        suggestion = did_you_mean(str(step), words.steps)
        if suggestion:
            return Diagnostic(code="SF107", message=f"unknown step '{step}' ({suggestion})", span=f.span(step))
    if word is not None and f.token is not None and f.token.type in ("NAME", "STRING", "NUMBER", "REGEX"):
        suggestion = did_you_mean(str(word), words.statements + words.top_level)
        if suggestion:
            return Diagnostic(code="SF107", message=f"unknown statement '{word}' ({suggestion})", span=f.span(word))
    if word is not None and str(word) in FOREIGN_WORDS:
        return Diagnostic(code="SF107", message=f"unknown statement '{word}'", span=f.span(word),
                          hint=FOREIGN_WORDS[str(word)])
    if f.token is not None and f.token.type == "COLON":
        return Diagnostic(code="SF100", message="unexpected ':'", span=f.span(),
                          hint=f"a step's arguments go in parentheses: `({word}: ...)`")
    name = str(word) if word is not None else "name"
    return Diagnostic(code="SF106", message=f"missing '=' after '{name}'", span=f.span(),
                      hint=f"write `{name} = <step or expression>`")


def _reserved_word(f: Failure) -> Diagnostic:
    word = f.history[-1]
    return Diagnostic(code="SF108", message=f"'{word}' is a reserved word and cannot name a step",
                      span=f.span(word), hint="choose another name")


def _chained_comparison(f: Failure) -> Diagnostic:
    return Diagnostic(code="SF110", message="comparisons cannot be chained", span=f.span(),
                      hint="join them with `and`: `a < b and b < c`")


def _equals_in_expression(f: Failure) -> Diagnostic:
    return Diagnostic(code="SF111", message="'=' inside an expression", span=f.span(),
                      hint="compare with '=='; '=' only starts an assignment `name = ...`")


def _missing_comma(f: Failure) -> Diagnostic:
    return Diagnostic(code="SF112", message=f"missing ',' before '{_short(f.token)}'", span=f.span(),
                      hint="separate items and arguments with ','")


def _top_level(f: Failure) -> Diagnostic:
    word = str(f.token)
    suggestion = did_you_mean(word, keywords().top_level)
    if suggestion and f.token is not None and f.token.type == "NAME":
        return Diagnostic(code="SF107", message=f"unknown keyword '{word}' ({suggestion})", span=f.span())
    return Diagnostic(code="SF100", message=f"unexpected '{_short(f.token)}' outside a recipe", span=f.span(),
                      hint=FOREIGN_WORDS.get(word, "a file holds imports and `recipe name(...) { ... }` definitions"))


#: The mistakes, each with malformed examples; the state and token they fail at identify the mistake.
MISTAKES: dict[str, Mistake] = {
    "statement_without_equals": Mistake(
        examples=("recipe a() { x 1 }", "recipe a() { x generate p }", 'recipe a() { x "s" }'),
        describe=_statement_without_equals,
        any_token=True,
    ),
    "reserved_word": Mistake(
        examples=lambda: tuple(f"recipe a() {{ {kw} = 1 }}" for kw in keywords().statements if kw != "if"),
        describe=_reserved_word,
    ),
    "chained_comparison": Mistake(
        examples=tuple(f"recipe a() {{ x = a < b {op} c }}" for op in COMPARISONS),
        describe=_chained_comparison,
    ),
    "equals_in_expression": Mistake(
        examples=("recipe a() { if x = 1 {} }", "recipe a() { if x.y = 1 {} }", "recipe a() { if 1 = 1 {} }",
                  'recipe a() { if "a" = x {} }', "recipe a() { if f(x) = 1 {} }", "recipe a() { if x[0] = 1 {} }",
                  "recipe a() { stop when x = 1 }"),
        describe=_equals_in_expression,
    ),
    "missing_comma": Mistake(
        examples=tuple(f"recipe a() {{ x = {snippet} }}" for snippet in (
            "generate p (n: 3 m: 5)", "generate p (n: x m: 5)", 'generate p (n: "a" m: 5)', "[a b]", "[a 1]",
            '[a "b"]', "f(a b)", "f(a 1)",
        )),
        describe=_missing_comma,
    ),
    "top_level": Mistake(
        examples=("recipi a() {}", "recipe a() {} recipi b() {}", "x = 1"),
        describe=_top_level,
        any_token=True,
    ),
}


@dataclass(frozen=True)
class _Index:
    exact: dict[tuple[int, str], str]
    by_state: dict[int, str]


@lru_cache(maxsize=1)
def _index() -> _Index:
    """Parse every example once; keys that two mistakes share are ambiguous and dropped."""
    exact: dict[tuple[int, str], str] = {}
    by_state: dict[int, str] = {}
    clashes: set[tuple[int, str]] = set()
    for label, mistake in MISTAKES.items():
        for example in mistake.snippets():
            try:
                parser().parse(example)
            except UnexpectedToken as exc:
                position = exc.state.position
                key = (position, exc.token.type)
                if exact.get(key, label) != label:
                    clashes.add(key)
                exact[key] = label
                if mistake.any_token:
                    by_state.setdefault(position, label)
            except UnexpectedInput:
                continue
    for key in clashes:
        del exact[key]
    return _Index(exact=exact, by_state=by_state)


def mistake_for(state: int, token_type: str) -> str | None:
    """The label of the known mistake made at this parser state with this token, if any."""
    index = _index()
    return index.exact.get((state, token_type)) or index.by_state.get(state)


def describe(f: Failure) -> Diagnostic:
    """One friendly diagnostic for a parse failure."""
    token = f.token
    if token is None:
        return _bad_character(f)
    if token.type == "$END":
        return _ended(f)
    if token.type in CLOSERS and not any(o.type == CLOSERS[token.type] for o in f.open_brackets):
        return Diagnostic(code="SF114", message=f"unmatched '{token}'", span=f.span(),
                          hint=f"nothing open here for '{token}' to close")
    unclosed = _unclosed_before(f) or _unfinished_expression(f)
    if unclosed is not None:
        return unclosed
    label = mistake_for(f.state, token.type)
    if label is not None:
        return MISTAKES[label].describe(f)
    inside = f.open_brackets[-1].type if f.open_brackets else None
    starts_item = token.type in keywords().expression_starts and token.type != "LBRACE"  # '{' opens a block
    if inside in ("LSQB", "LPAR") and "COMMA" in f.expected and starts_item:
        return _missing_comma(f)
    comment = str(token) == "/" and f.text.startswith("/", token.end_pos or 0)
    hint = "comments start with '#'" if comment else expected_hint(f.expected)
    return Diagnostic(code="SF100", message=f"unexpected '{_short(token)}'", span=f.span(), hint=hint)


def _unclosed_before(f: Failure) -> Diagnostic | None:
    """A bracket left open on an earlier line, seen when the next statement or recipe starts inside it."""
    token = f.token
    if token is None or not f.open_brackets:
        return None
    last = f.history[-1] if f.history else None
    words = keywords()
    new_recipe = str(token) in words.top_level or (last is not None and str(last) in words.top_level
                                                      and last.type == "NAME" and token.type == "NAME")
    if new_recipe:
        word = str(token) if str(token) in words.top_level else str(last)
        opener = next((o for o in reversed(f.open_brackets) if o.type == "LBRACE"), f.open_brackets[-1])
        return _never_closed(f, opener, f"before the next '{word}'")
    opener = f.open_brackets[-1]
    if opener.type == "LBRACE" or opener.line == token.line:
        return None
    starts_statement = (
        str(token) in words.statements
        or (token.type == "EQUAL" and last is not None and last.type == "NAME" and _first_on_line(f, last))
        or (token.type == "NAME" and _first_on_line(f, token) and _assignment_follows(f.text, token))
    )
    return _never_closed(f, opener, "") if starts_statement else None


def _unfinished_expression(f: Failure) -> Diagnostic | None:
    """`x = q +` then `return x`: the keyword was read as a name, to finish the expression of the line before."""
    words = keywords()
    for before, word in zip(f.history, list(f.history)[1:], strict=False):
        if word.type == "NAME" and str(word) in words.statements and (word.line or 0) > (before.end_line or 0) \
                and str(before) in OPERATORS and before.type not in ("NAME", "STRING"):
            hint = f"the expression before it, ending in '{before}' on line {before.line}, is unfinished"
            return Diagnostic(code="SF100", message=f"unexpected '{word}'", span=f.span(word), hint=hint)
    return None


def _first_on_line(f: Failure, token: Token) -> bool:
    return not any(t.line == token.line for t in f.history if t is not token)


def _assignment_follows(text: str, token: Token) -> bool:
    rest = text[token.end_pos or 0 :].lstrip(" \t")
    return rest.startswith("=") and not rest.startswith("==")


def _never_closed(f: Failure, opener: Token, where: str) -> Diagnostic:
    closer = {"LBRACE": "}", "LSQB": "]", "LPAR": ")"}[opener.type]
    message = f"this '{opener}' is never closed" + (f" {where}" if where else "")
    return Diagnostic(code="SF104", message=message, span=f.span(opener), hint=f"add the matching '{closer}'")


def _bad_character(f: Failure) -> Diagnostic:
    pos = f.offset
    char = f.text[pos] if pos < len(f.text) else ""
    if char == '"':
        span = f.span()
        if f.text[max(0, pos - 2) : pos] == '""':
            span = span.model_copy(update={"column": max(1, f.column - 2)})
        return Diagnostic(code="SF102", message="unclosed string literal", span=span,
                          hint='close it with " (or """ for text spanning lines)')
    if char == "/":
        return Diagnostic(code="SF103", message="malformed regex literal", span=f.span(),
                          hint="write regexes as /pattern/flags on one line")
    return Diagnostic(code="SF101", message=f"unexpected character {char!r}", span=f.span(),
                      hint=CHARACTER_HINTS.get(char))


def _ended(f: Failure) -> Diagnostic:
    if f.open_brackets:
        diagnostic = _never_closed(f, f.open_brackets[-1], "")
        return diagnostic.model_copy(update={"message": "code ended unexpectedly: " + diagnostic.message})
    return Diagnostic(code="SF105", message="code ended unexpectedly", span=f.span(), hint=expected_hint(f.expected))


def _short(token: Token | None, limit: int = 24) -> str:
    text = str(token or "").splitlines()[0] if str(token or "") else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"

