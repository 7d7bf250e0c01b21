"""Parsing with error recovery: every syntax error in a file is reported once, without follow-on errors.

On an error the parser drops the broken statement (panic mode): it returns to the innermost block (or the top
level), skips tokens up to a synchronising one (the first token of a later line, or a '}'), checks that the
parser accepts it there, and resumes. Braces opened by skipped code are skipped with it.
"""

from __future__ import annotations

from collections import deque
from copy import copy
from typing import Any

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import LineCounter
from lark.parsers.lalr_parser_state import ParserState

from sfdsl.diagnostics import Diagnostic
from sfdsl.errors import CompileError
from sfdsl.grammar.loader import parser
from sfdsl.limits import MAX_PARSER_STACK, too_deep
from sfdsl.source_limits import MAX_TOKENS, too_many_tokens
from sfdsl.syntax_errors import CLOSERS, OPENERS, Failure, describe, keywords, token_span

MAX_ERRORS = 50
HISTORY = 8
#: Tokens that prove a parser state is at statement level: inside a block, or at the top of a file.
STATEMENT_PROBES = (Token("RETURN", "return"), Token("RECIPE", "recipe"))


class _TooDeep(Exception):
    def __init__(self, token: Token) -> None:
        self.token = token


class _TooMany(_TooDeep):
    """More than ``MAX_TOKENS`` tokens were read, parsing and skipping together."""


def parse_tree(text: str, *, file: str) -> Tree[Token]:
    """Parse ``text`` into a Lark tree.

    Raises:
        CompileError: with one diagnostic per syntax error in the file.
    """
    return _Session(text, file).run()


class _Session:
    """One parse of one text: the interactive LALR parser, its lexer, and the errors found so far."""

    def __init__(self, text: str, file: str) -> None:
        interactive = parser().parse_interactive(text)
        self.text, self.file = text, file
        self.state: ParserState[Any] = interactive.parser_state
        self.thread = interactive.lexer_thread
        self.history: deque[Token] = deque(maxlen=HISTORY)
        self.diagnostics: list[Diagnostic] = []
        self.last_sync = -1
        self.failed_on = 0
        self.tokens = 0

    def run(self) -> Tree[Token]:
        try:
            tree = self._run()
        except _TooMany as exc:
            self.diagnostics.append(too_many_tokens(token_span(self.file, exc.token)))
        except _TooDeep as exc:
            self.diagnostics.append(too_deep(token_span(self.file, exc.token)))
        else:
            if tree is not None and not self.diagnostics:
                return tree
        raise CompileError(diagnostics=self.diagnostics, sources={self.file: self.text})

    def _run(self) -> Tree[Token] | None:
        """The tree, or None once the errors are all found; raises _TooDeep or _TooMany at a limit."""
        while True:
            try:
                return self._parse()
            except UnexpectedInput as exc:
                failure = self._failure(exc)
                self._report(describe(failure), failure)
                at_end = failure.token is not None and failure.token.type == "$END"
                if at_end or len(self.diagnostics) >= MAX_ERRORS or not self._recover(exc):
                    return None

    # ------------------------------------------------------------ parsing

    def _parse(self) -> Tree[Token]:
        state = self.state
        for token in self.thread.lex(state):
            self._count(token)
            state.feed_token(token)
            self.history.append(token)
            if len(state.state_stack) > MAX_PARSER_STACK:
                raise _TooDeep(token)
        return state.feed_token(self._end_token(), True)  # type: ignore[no-any-return]

    def _count(self, token: Token) -> None:
        self.tokens += 1
        if self.tokens > MAX_TOKENS:
            raise _TooMany(token)

    def _end_token(self) -> Token:
        last = self.thread.state.last_token
        if last is None:
            return Token("$END", "", 0, 1, 1, 1, 1, 0)
        line, column = last.end_line or 1, last.end_column or 1
        return Token("$END", "", len(self.text), line, column, line, column, len(self.text))

    def _failure(self, exc: UnexpectedInput) -> Failure:
        state = self.state
        token = exc.token if isinstance(exc, UnexpectedToken) else None
        if token is not None:
            offset, line, column = token.start_pos or 0, token.line or 1, token.column or 1
        else:
            offset, line, column = exc.pos_in_stream or 0, exc.line or 1, exc.column or 1
        actions = state.parse_conf.states[state.position]
        return Failure(
            text=self.text, file=self.file, token=token, offset=offset, line=line, column=column,
            state=state.position, expected=frozenset(t for t in actions if t.isupper()),
            history=tuple(self.history),
            open_brackets=tuple(unclosed(state.value_stack)),
        )

    def _report(self, diagnostic: Diagnostic, failure: Failure) -> None:
        """Keep the errors that are not consequences of earlier ones.

        A second error on the same line is almost always caused by the first; so is a block found unclosed
        at the end (or at the next recipe) after an error inside it, since recovery may have skipped its '}'.
        """
        previous = (self.diagnostics[-1].span.line, self.failed_on) if self.diagnostics else None
        self.failed_on = failure.line
        if previous == (diagnostic.span.line, failure.line):
            return
        block_left_open = diagnostic.code == "SF104" and any(o.type == "LBRACE" and o.line == diagnostic.span.line
                                                             for o in failure.open_brackets)
        if block_left_open and any(d.span.line >= diagnostic.span.line for d in self.diagnostics):
            return
        self.diagnostics.append(diagnostic)

    # ------------------------------------------------------------ recovery

    def _recover(self, exc: UnexpectedInput) -> bool:
        """Skip to a synchronising token the parser accepts at statement level; False when none is left."""
        lex_state = self.thread.state
        if isinstance(exc, UnexpectedToken):
            restart = exc.token
            last = self.history[-1] if self.history else None
            if last is not None and str(last) in keywords().top_level and last.type == "NAME":
                restart = last  # `recipe b(...)` read as a name inside a recipe left open: restart at it
                self.history.pop()
            lex_state.line_ctr = _counter_at(restart)
            prev_line = self.history[-1].end_line or 0 if self.history else 0
        elif isinstance(exc, UnexpectedCharacters):
            pos: int = exc.pos_in_stream or 0
            quote = self.text[pos] == '"'
            if quote and pos >= 2 and self.text[pos - 2 : pos] == '""':
                return False  # an unclosed """: the rest of the file is the string's text
            end = self.text.find("\n", pos) if quote else -1
            lex_state.line_ctr.feed(self.text[pos : end if end >= 0 else pos + 1])
            prev_line = exc.line or 0
        else:
            return False
        boundaries = self._boundaries()
        if not boundaries:
            return False
        open_braces = sum(1 for t in unclosed(self.state.value_stack[boundaries[0] - 1 :]) if t.type == "LBRACE")
        root = self.thread.lexer.root_lexer  # type: ignore[attr-defined]
        while True:
            saved = copy(lex_state.line_ctr)
            try:
                token = root.next_token(lex_state)
            except EOFError:
                self._truncate(boundaries[0])
                return True
            except UnexpectedCharacters:
                lex_state.line_ctr.feed(self.text[lex_state.line_ctr.char_pos])
                continue
            self._count(token)
            candidate = open_braces == 0 and token.start_pos != self.last_sync and (
                token.type == "RBRACE" or (token.line or 0) > prev_line)
            if token.type == "LBRACE":
                open_braces += 1
            elif token.type == "RBRACE" and open_braces:
                open_braces -= 1
            prev_line = token.end_line or prev_line
            if not candidate:
                continue
            height = self._accepting(boundaries, saved, token.type)
            if height is not None:
                self._truncate(height)
                lex_state.line_ctr = saved
                self.last_sync = token.start_pos or 0
                return True

    def _boundaries(self) -> list[int]:
        """Stack heights, innermost first, at which the parser is between statements."""
        stack, states = self.state.state_stack, self.state.parse_conf.states
        heights = []
        for height in range(len(stack), 0, -1):
            actions = states[stack[height - 1]]
            if any(p.type in actions and self._accepts(height, p) for p in STATEMENT_PROBES):
                heights.append(height)
        return heights

    def _accepting(self, boundaries: list[int], at: Any, kind: str) -> int | None:
        """The innermost boundary whose parser state accepts the token at ``at``, lexed in that state."""
        lexers = self.thread.lexer.lexers  # type: ignore[attr-defined]
        for height in boundaries:
            lex_state = copy(self.thread.state)
            lex_state.line_ctr = copy(at)
            try:
                token = lexers[self.state.state_stack[height - 1]].next_token(lex_state)
            except (UnexpectedCharacters, EOFError):
                continue
            if token.type != kind and kind in ("RECIPE", "IMPORT"):
                continue  # `recipe` read as a name inside a block: it starts the next recipe
            if self._accepts(height, token):
                return height
        return None

    def _accepts(self, height: int, token: Token) -> bool:
        state = self.state
        trial = ParserState(state.parse_conf, state.lexer, state.state_stack[:height],
                            state.value_stack[: height - 1])
        try:
            trial.feed_token(token)
        except UnexpectedToken:
            return False
        return True

    def _truncate(self, height: int) -> None:
        del self.state.state_stack[height:]
        del self.state.value_stack[height - 1 :]


def unclosed(values: list[Any]) -> list[Token]:
    """The brackets among the parser's pending values that are opened and not yet closed, outermost first."""
    pending: list[Token] = []
    for value in values:
        if not isinstance(value, Token):
            continue
        if value.type in OPENERS:
            pending.append(value)
        elif value.type in CLOSERS and pending and pending[-1].type == CLOSERS[value.type]:
            pending.pop()
    return pending


def _counter_at(token: Token) -> LineCounter:
    """A lexer line counter positioned at the start of ``token``."""
    counter = LineCounter("\n")
    counter.char_pos = token.start_pos or 0
    counter.line = token.line or 1
    counter.column = token.column or 1
    counter.line_start_pos = counter.char_pos - counter.column + 1
    return counter
