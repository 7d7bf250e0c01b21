"""Text → Lark tree → typed AST, with Lark's exceptions rewritten into friendly diagnostics."""

from __future__ import annotations

import textwrap
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span, did_you_mean
from sfdsl.errors import CompileError
from sfdsl.grammar.loader import KEYWORDS, parser

STEP_KEYWORDS = ("generate", "deepen", "extract", "evaluate", "vote", "refine", "map", "call", "search")
STATEMENT_KEYWORDS = ("model", "prompt", "if", "return", "abstain", "stop", "next", "score", "yield")

TOKEN_TEXT = {
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "DOT": "'.'", "NAME": "a name", "STRING": "a string",
    "NUMBER": "a number", "REGEX": "a /regex/", "$END": "end of file", "__ANON_0": "'->'",
}


def parse(text: str, *, file: str = "<string>") -> ast.Module:
    """Parse one .sf source into an AST module.

    Raises:
        CompileError: with one syntax diagnostic pointing at the problem.
    """
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise CompileError(diagnostics=[_syntax_diagnostic(exc, text, file)], sources={file: text}) from None
    try:
        return _Builder(file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, _BuildError):
            diag = exc.orig_exc.diagnostic
            raise CompileError(diagnostics=[diag], sources={file: text}) from None
        raise


# ---------------------------------------------------------------- AST building


class _BuildError(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


def _span_of(file: str, item: Any) -> Span:
    if isinstance(item, Token):
        return Span(
            file=file,
            line=item.line or 1,
            column=item.column or 1,
            end_line=item.end_line or item.line or 1,
            end_column=item.end_column or (item.column or 1) + len(item),
        )
    meta = item
    if getattr(meta, "empty", True):
        return Span(file=file)
    return Span(file=file, line=meta.line, column=meta.column, end_line=meta.end_line, end_column=meta.end_column)


def decode_string(raw: str) -> str:
    """Decode a string token: strip quotes, apply escapes, dedent triple-quoted text."""
    triple = raw.startswith('"""')
    body = raw[3:-3] if triple else raw[1:-1]
    out: list[str] = []
    i = 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(escapes.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    text = "".join(out)
    if triple:
        if text.startswith("\n"):
            text = text[1:]
        text = textwrap.dedent(text)
    return text


def _regex(file: str, token: Token) -> ast.RegexLit:
    raw = str(token)
    end = raw.rfind("/")
    pattern = raw[1:end].replace("\\/", "/")
    return ast.RegexLit(span=_span_of(file, token), pattern=pattern, flags=raw[end + 1 :])


@v_args(meta=True)
class _Builder(Transformer[Token, Any]):
    """Turns the Lark tree into pydantic AST nodes."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _s(self, meta: Any) -> Span:
        return _span_of(self.file, meta)

    # top level
    def start(self, meta: Any, items: list[Any]) -> ast.Module:
        imports = [i for i in items if isinstance(i, ast.Import)]
        recipes = [i for i in items if isinstance(i, ast.Recipe)]
        return ast.Module(span=self._s(meta), file=self.file, imports=imports, recipes=recipes)

    def import_decl(self, meta: Any, c: list[Any]) -> ast.Import:
        return ast.Import(span=self._s(meta), path=decode_string(c[0]), alias=str(c[1]) if c[1] else None)

    def recipe(self, meta: Any, c: list[Any]) -> ast.Recipe:
        name, *rest = c
        body, returns = rest[-1], rest[-2]
        params = [p for p in rest[:-2] if p is not None]
        span = _span_of(self.file, name)
        return ast.Recipe(span=span, name=str(name), params=params, returns=returns or [], body=body)

    def returns(self, meta: Any, c: list[Any]) -> list[ast.OutField]:
        return [f for f in c if f is not None]

    def out_field(self, meta: Any, c: list[Any]) -> ast.OutField:
        return ast.OutField(span=self._s(meta), name=str(c[0]), type=c[1])

    def param(self, meta: Any, c: list[Any]) -> ast.Param:
        return ast.Param(span=_span_of(self.file, c[0]), name=str(c[0]), type=c[1], default=c[2])

    def type_ref(self, meta: Any, c: list[Any]) -> ast.TypeRef:
        return ast.TypeRef(span=self._s(meta), name=str(c[0]), arg=c[1])

    def block(self, meta: Any, c: list[Any]) -> ast.Block:
        return ast.Block(span=self._s(meta), stmts=c)

    # declarations
    def model_decl(self, meta: Any, c: list[Any]) -> ast.ModelDecl:
        return ast.ModelDecl(span=_span_of(self.file, c[0]), name=str(c[0]), backend=str(c[1]), args=c[2] or [])

    def prompt_decl(self, meta: Any, c: list[Any]) -> ast.PromptDecl:
        name, body = c
        span = _span_of(self.file, name)
        if isinstance(body, Token):
            body_span = _span_of(self.file, body)
            return ast.PromptDecl(span=span, name=str(name), text=decode_string(body), body_span=body_span)
        turns, body_span = body
        return ast.PromptDecl(span=span, name=str(name), turns=turns, body_span=body_span)

    def chat(self, meta: Any, c: list[Any]) -> tuple[list[ast.Turn], Span]:
        return c, self._s(meta)

    def turn(self, meta: Any, c: list[Any]) -> ast.Turn:
        return ast.Turn(span=_span_of(self.file, c[0]), role=str(c[0]), text=decode_string(c[1]))

    # statements
    def assign(self, meta: Any, c: list[Any]) -> ast.Assign:
        return ast.Assign(span=_span_of(self.file, c[0]), target=str(c[0]), value=c[1])

    def if_stmt(self, meta: Any, c: list[Any]) -> ast.If:
        orelse = c[2]
        if isinstance(orelse, ast.If):
            orelse = ast.Block(span=orelse.span, stmts=[orelse])
        return ast.If(span=self._s(meta), cond=c[0], then=c[1], orelse=orelse)

    def return_stmt(self, meta: Any, c: list[Any]) -> ast.Return:
        if isinstance(c[0], list):
            return ast.Return(span=self._s(meta), fields=c[0])
        return ast.Return(span=self._s(meta), value=c[0])

    def abstain_stmt(self, meta: Any, c: list[Any]) -> ast.Abstain:
        return ast.Abstain(span=self._s(meta), fields=c[0])

    def fields(self, meta: Any, c: list[Any]) -> list[ast.Field_]:
        return c

    def field(self, meta: Any, c: list[Any]) -> ast.Field_:
        return ast.Field_(span=_span_of(self.file, c[0]), name=str(c[0]), value=c[1])

    def stop_stmt(self, meta: Any, c: list[Any]) -> ast.Stop:
        return ast.Stop(span=self._s(meta), cond=c[0])

    def next_stmt(self, meta: Any, c: list[Any]) -> ast.Next:
        return ast.Next(span=self._s(meta), value=c[0])

    def score_stmt(self, meta: Any, c: list[Any]) -> ast.ScoreStmt:
        return ast.ScoreStmt(span=self._s(meta), value=c[0])

    def yield_stmt(self, meta: Any, c: list[Any]) -> ast.Yield:
        return ast.Yield(span=self._s(meta), value=c[0])

    # steps
    def using(self, meta: Any, c: list[Any]) -> str:
        return str(c[0])

    def args(self, meta: Any, c: list[Any]) -> list[ast.Arg]:
        return [a for a in c if a is not None]

    def with_args(self, meta: Any, c: list[Any]) -> list[ast.Arg]:
        return c[0]

    def arg(self, meta: Any, c: list[Any]) -> ast.Arg:
        return ast.Arg(span=_span_of(self.file, c[0]), name=str(c[0]), value=c[1])

    def generate(self, meta: Any, c: list[Any]) -> ast.Generate:
        return ast.Generate(span=self._s(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])

    def deepen(self, meta: Any, c: list[Any]) -> ast.Deepen:
        return ast.Deepen(span=self._s(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])

    def extract_kind(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return str(c[0]), None

    def extract_regex(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return "regex", _regex(self.file, c[0])

    def extract_choice(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return "choice", c[0]

    def extract(self, meta: Any, c: list[Any]) -> ast.Extract:
        (mode, extra), source, after, args = c
        return ast.Extract(
            span=self._s(meta),
            mode=mode,
            source=source,
            pattern=extra if isinstance(extra, ast.RegexLit) else None,
            choices=extra if isinstance(extra, ast.ListExpr) else None,
            after=_regex(self.file, after) if after is not None else None,
            args=args or [],
        )

    def evaluate(self, meta: Any, c: list[Any]) -> ast.Evaluate:
        return ast.Evaluate(span=self._s(meta), mode=str(c[0]), prompt=str(c[1]), args=c[2] or [], using=c[3])

    def vote(self, meta: Any, c: list[Any]) -> ast.Vote:
        return ast.Vote(span=self._s(meta), source=c[0], mode=str(c[1]), args=c[2] or [], using=c[3])

    def vote_times(self, meta: Any, c: list[Any]) -> ast.VoteTimes:
        return ast.VoteTimes(span=self._s(meta), count=c[0], mode=str(c[1]), args=c[2] or [], using=c[3], body=c[4])

    def refine(self, meta: Any, c: list[Any]) -> ast.Refine:
        return ast.Refine(span=self._s(meta), initial=c[0], var=str(c[1]), args=c[2] or [], body=c[3])

    def map_step(self, meta: Any, c: list[Any]) -> ast.MapStep:
        return ast.MapStep(span=self._s(meta), var=str(c[0]), source=c[1], args=c[2] or [], body=c[3])

    def call(self, meta: Any, c: list[Any]) -> ast.CallRecipe:
        return ast.CallRecipe(span=self._s(meta), target=c[0], args=[a for a in c[1:] if a is not None])

    def dotted(self, meta: Any, c: list[Any]) -> list[str]:
        return [str(t) for t in c]

    def search(self, meta: Any, c: list[Any]) -> ast.Search:
        strategy, root, args, *parts = c
        return ast.Search(span=self._s(meta), strategy=str(strategy), root=root, args=args or [], parts=parts)

    def search_part(self, meta: Any, c: list[Any]) -> ast.SearchPart:
        return ast.SearchPart(span=_span_of(self.file, c[0]), name=str(c[0]), body=c[1])

    # expressions
    def _binary_chain(self, meta: Any, c: list[Any], ops: list[str] | None = None) -> Any:
        left = c[0]
        rest = c[1:]
        i = 0
        while i < len(rest):
            if ops is None:
                op, right = str(rest[i]), rest[i + 1]
                i += 2
            else:
                op, right = ops[0], rest[i]
                i += 1
            left = ast.BinOp(span=self._merge(left.span, right.span), op=op, left=left, right=right)
        return left

    def _merge(self, a: Span, b: Span) -> Span:
        return Span(file=self.file, line=a.line, column=a.column, end_line=b.end_line, end_column=b.end_column)

    def or_expr(self, meta: Any, c: list[Any]) -> Any:
        return self._binary_chain(meta, c, ["or"])

    def and_expr(self, meta: Any, c: list[Any]) -> Any:
        return self._binary_chain(meta, c, ["and"])

    def sum(self, meta: Any, c: list[Any]) -> Any:
        return self._binary_chain(meta, c)

    product = sum

    def comparison(self, meta: Any, c: list[Any]) -> Any:
        return self._binary_chain(meta, c)

    def comp_op(self, meta: Any, c: list[Any]) -> str:
        return str(c[0])

    def not_op(self, meta: Any, c: list[Any]) -> ast.Unary:
        return ast.Unary(span=self._s(meta), op="not", operand=c[0])

    def neg(self, meta: Any, c: list[Any]) -> ast.Unary:
        return ast.Unary(span=self._s(meta), op="-", operand=c[0])

    def attr(self, meta: Any, c: list[Any]) -> ast.Attr:
        return ast.Attr(span=self._s(meta), value=c[0], attr=str(c[1]))

    def index(self, meta: Any, c: list[Any]) -> ast.Index:
        return ast.Index(span=self._s(meta), value=c[0], index=c[1])

    def func(self, meta: Any, c: list[Any]) -> ast.Func:
        return ast.Func(span=self._s(meta), func=str(c[0]), args=[a for a in c[1:] if a is not None])

    def number(self, meta: Any, c: list[Any]) -> ast.Const:
        raw = str(c[0])
        value: Any = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
        return ast.Const(span=self._s(meta), value=value)

    def string(self, meta: Any, c: list[Any]) -> ast.Const:
        return ast.Const(span=self._s(meta), value=decode_string(c[0]))

    def regex(self, meta: Any, c: list[Any]) -> ast.RegexLit:
        return _regex(self.file, c[0])

    def true(self, meta: Any, c: list[Any]) -> ast.Const:
        return ast.Const(span=self._s(meta), value=True)

    def false(self, meta: Any, c: list[Any]) -> ast.Const:
        return ast.Const(span=self._s(meta), value=False)

    def none(self, meta: Any, c: list[Any]) -> ast.Const:
        return ast.Const(span=self._s(meta), value=None)

    def name(self, meta: Any, c: list[Any]) -> ast.Name:
        return ast.Name(span=_span_of(self.file, c[0]), id=str(c[0]))

    def list_lit(self, meta: Any, c: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(span=self._s(meta), items=[x for x in c if x is not None])

    def dict_lit(self, meta: Any, c: list[Any]) -> ast.DictExpr:
        pairs = [p for p in c if p is not None]
        return ast.DictExpr(span=self._s(meta), keys=[k for k, _ in pairs], values=[v for _, v in pairs])

    def pair(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return decode_string(c[0]), c[1]


# ---------------------------------------------------------------- syntax errors


def _syntax_diagnostic(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    span = Span(file=file, line=line, column=column, end_line=line, end_column=column + 1)

    def diag(code: str, message: str, hint: str | None = None, at: Span | None = None) -> Diagnostic:
        return Diagnostic(code=code, message=message, span=at or span, hint=hint)

    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char == '"':
            if text[max(0, exc.pos_in_stream - 2) : exc.pos_in_stream] == '""':
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
    token_span = _span_of(file, token)
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
            return diag("SF107", f"unknown statement '{word}' ({keyword})", at=_span_of(file, previous))
        return diag("SF106", f"missing '=' after '{word}'", f"write `{word} = <step or expression>`", token_span)
    if previous is not None and previous.type == "NAME" and token.type in ("NAME", "STRING", "LPAR", "REGEX"):
        word = str(previous)
        suggestion = did_you_mean(word, STEP_KEYWORDS + STATEMENT_KEYWORDS + ("recipe", "import"))
        if suggestion:
            return diag("SF107", f"unknown keyword '{word}' ({suggestion})", at=_span_of(file, previous))
    if previous is not None and str(previous) in KEYWORDS and token.type == "EQUAL":
        return diag(
            "SF108",
            f"'{previous}' is a reserved word and cannot name a step",
            "choose another name",
            _span_of(file, previous),
        )
    if token.type == "NAME" and str(token) not in KEYWORDS:
        suggestion = did_you_mean(str(token), [k for k in STEP_KEYWORDS + STATEMENT_KEYWORDS + ("recipe", "import")])
        if suggestion and not expected & {"NAME"}:
            return diag("SF107", f"unknown keyword '{token}' ({suggestion})", at=token_span)
    shown = f"'{token}'" if token.type != "$END" else "end of file"
    return diag("SF100", f"unexpected {shown}", _expected_hint(exc), token_span)


def _misspelled_step(text: str, file: str, previous: Token) -> Diagnostic | None:
    """`x = genrate p`: the word after '=' on the line before `previous` looks like a step keyword."""
    import re

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
    import re

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
