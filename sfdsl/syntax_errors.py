"""Lark's syntax errors rewritten into friendly diagnostics: unclosed strings and braces,
missing '=', misspelled keywords with "did you mean", expected tokens listed as literals."""

from __future__ import annotations

import re

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from sfdsl.diagnostics import Diagnostic, Span, did_you_mean
from sfdsl.grammar.loader import KEYWORDS

STEP_KEYWORDS = ("generate", "deepen", "extract", "evaluate", "vote", "refine", "map", "call", "search")
STATEMENT_KEYWORDS = ("model", "prompt", "if", "return", "abstain", "stop", "next", "score", "yield")

TOKEN_TEXT = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "DOT": "'.'", "NAME": "a name", "STRING": "a string",
    "NUMBER": "a number", "REGEX": "a /regex/", "$END": "end of file", "__ANON_0": "'->'",
}


def _token_span(file: str, token: Token) -> Span:
    line, column = token.line or 1, token.column or 1
    return Span(file=file, line=line, column=column, end_line=token.end_line or line,
                end_column=token.end_column or column + len(token))


def syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    """One friendly diagnostic for a Lark parse failure."""
    line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    span = Span(file=file, line=line, column=column, end_line=line, end_column=column + 1)

    def diag(code: str, message: str, hint: str | None = None, at: Span | None = None) -> Diagnostic:
        return Diagnostic(code=code, message=message, span=at or span, hint=hint)

    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        if char == '"':
            if text[max(0, pos - 2) : pos] == '""':
                span = Span(file=file, line=line, column=max(1, column - 2), end_line=line, end_column=column + 1)
            return diag("SF102", "unclosed string literal", 'close it with " (or """ for text spanning lines)')
        if char == "/":
            return diag("SF103", "malformed regex literal", "write regexes as /pattern/flags on one line")
        return diag("SF101", f"unexpected character {char!r}")

    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        opener = _unclosed_brace(text)
        if opener is not None:
            at = Span(file=file, line=opener[0], column=opener[1], end_line=opener[0], end_column=opener[1] + 1)
            return diag("SF104", "code ended unexpectedly: this '{' is never closed", "add the matching '}'", at)
        return diag("SF105", "code ended unexpectedly", _expected_hint(exc))

    assert isinstance(exc, UnexpectedToken)
    token, previous = exc.token, _previous_token(exc)
    token_span = _token_span(file, token)
    expected = set(exc.expected)
    if previous is not None and previous.type == "NAME" and "EQUAL" in expected:
        word = str(previous)
        misspelled = _misspelled_step(text, file, previous)
        if misspelled is not None:
            return misspelled
        step_field = _step_in_field(text, file, previous)
        if step_field is not None:
            return step_field
        keyword = did_you_mean(word, STATEMENT_KEYWORDS + ("recipe",))
        if keyword and token.type in ("NAME", "STRING", "NUMBER"):
            return diag("SF107", f"unknown statement '{word}' ({keyword})", at=_token_span(file, previous))
        return diag("SF106", f"missing '=' after '{word}'", f"write `{word} = <step or expression>`", token_span)
    if previous is not None and previous.type == "NAME" and token.type in ("NAME", "STRING", "LPAR", "REGEX"):
        word = str(previous)
        suggestion = did_you_mean(word, STEP_KEYWORDS + STATEMENT_KEYWORDS + ("recipe", "import"))
        if suggestion:
            return diag("SF107", f"unknown keyword '{word}' ({suggestion})", at=_token_span(file, previous))
    if previous is not None and str(previous) in KEYWORDS and token.type == "EQUAL":
        return diag(
            "SF108",
            f"'{previous}' is a reserved word and cannot name a step",
            "choose another name",
            _token_span(file, previous),
        )
    if token.type == "NAME" and str(token) not in KEYWORDS:
        suggestion = did_you_mean(str(token), [k for k in STEP_KEYWORDS + STATEMENT_KEYWORDS + ("recipe", "import")])
        if suggestion and not expected & {"NAME"}:
            return diag("SF107", f"unknown keyword '{token}' ({suggestion})", at=token_span)
    shown = f"'{token}'" if token.type != "$END" else "end of file"
    return diag("SF100", f"unexpected {shown}", _expected_hint(exc), token_span)


def _misspelled_step(text: str, file: str, previous: Token) -> Diagnostic | None:
    """`x = genrate p`: the word after '=' on the line before `previous` looks like a step keyword."""
    lines = text.splitlines()
    for number in range((previous.line or 1), max(0, (previous.line or 1) - 2), -1):
        if not 1 <= number <= len(lines):
            continue
        match = re.match(r"\s*[A-Za-z_]\w*\s*=\s*([A-Za-z_]\w*)\b", lines[number - 1])
        if match and match.group(1) not in KEYWORDS:
            suggestion = did_you_mean(match.group(1), STEP_KEYWORDS)
            if suggestion:
                col = match.start(1) + 1
                at = Span(file=file, line=number, column=col, end_line=number, end_column=col + len(match.group(1)))
                return Diagnostic(code="SF107", message=f"unknown step '{match.group(1)}' ({suggestion})", span=at)
    return None


def _step_in_field(text: str, file: str, previous: Token) -> Diagnostic | None:
    """`return answer: extract ...`: fields take expressions, not steps."""
    lines = text.splitlines()
    line = lines[(previous.line or 1) - 1] if 0 < (previous.line or 0) <= len(lines) else ""
    match = re.search(r"\b(return|abstain)\b.*?:\s*(" + "|".join(STEP_KEYWORDS) + r")\b", line)
    if match is None:
        return None
    col = match.start(2) + 1
    at = Span(file=file, line=previous.line or 1, column=col, end_line=previous.line or 1,
              end_column=col + len(match.group(2)))
    return Diagnostic(code="SF109", message=f"the {match.group(2)} step cannot be a {match.group(1)} field",
                      span=at, hint="assign it first: `x = " + match.group(2) + " ...`, then `return answer: x`")


def _previous_token(exc: UnexpectedToken) -> Token | None:
    history = getattr(exc, "token_history", None)
    if history:
        return history[-1]
    state = getattr(exc, "state", None)
    value_stack = getattr(state, "value_stack", None) if state is not None else None
    if value_stack:
        last = value_stack[-1]
        if isinstance(last, Token):
            return last
        if isinstance(last, Tree) and last.children and isinstance(last.children[-1], Token):
            return last.children[-1]
    return None


def _expected_hint(exc: UnexpectedInput) -> str | None:
    expected = sorted(getattr(exc, "expected", None) or getattr(exc, "accepts", None) or [])
    if not expected:
        return None
    shown = [TOKEN_TEXT.get(t, f"'{t.lower()}'" if t.isupper() and t.isalpha() else t) for t in expected]
    if len(shown) > 6:
        return None
    return "expected " + ", ".join(shown)


def _unclosed_brace(text: str) -> tuple[int, int] | None:
    """Position (line, col) of the first '{' left open, ignoring strings and comments."""
    stack: list[tuple[int, int]] = []
    line, col, i = 1, 1, 0
    while i < len(text):
        ch = text[i]
        if text.startswith('"""', i):
            end = text.find('"""', i + 3)
            end = len(text) if end < 0 else end + 3
            chunk = text[i:end]
            line += chunk.count("\n")
            col = (len(chunk) - chunk.rfind("\n")) if "\n" in chunk else col + len(chunk)
            i = end
            continue
        if ch == '"' or ch == "#":
            stop = "\n" if ch == "#" else '"'
            j = i + 1
            while j < len(text) and text[j] != stop and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            col += j - i
            i = j + (1 if ch == '"' else 0)
            continue
        if ch == "{":
            stack.append((line, col))
        elif ch == "}" and stack:
            stack.pop()
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return stack[0] if stack else None
