"""Text → Lark tree → typed AST; syntax errors become diagnostics (see recovery.py and syntax_errors.py)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from lark import Token, Transformer, v_args
from lark.exceptions import VisitError

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.errors import CompileError
from sfdsl.limits import depth_problem, transform
from sfdsl.recovery import parse_tree
from sfdsl.registry import BUILDERS
from sfdsl.source_limits import literal_problem, normalize_newlines, source_problem


def parse(text: str, *, file: str = "<string>") -> ast.Module:
    """Parse one .sf source into an AST module.

    Line endings may be CR, LF or CRLF.

    Raises:
        CompileError: with one diagnostic per syntax error, for code nested past the compiler's limit, or for a
            text past the limits of ``sfdsl.source_limits`` (size, line length, literal sizes).
    """
    text = normalize_newlines(text)
    too_large = source_problem(text, file)
    if too_large is not None:
        raise CompileError(diagnostics=[too_large], sources={file: text})
    tree = parse_tree(text, file=file)
    too_deep = depth_problem(tree, file)
    if too_deep is not None:
        raise CompileError(diagnostics=[too_deep], sources={file: text})
    try:
        module: ast.Module = transform(_Builder(file, text), tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, _BuildError):
            diag = exc.orig_exc.diagnostic
            raise CompileError(diagnostics=[diag], sources={file: text}) from None
        raise
    return module


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


def header_comment(lines: list[str], line: int, *, at_top: bool = False) -> str:
    """The ``#`` comment block right above ``line`` (blank lines between allowed), without the ``#``s.

    With ``at_top``, the block that opens the file instead (a file's header describes all its recipes).
    """
    if at_top:
        start = next((i for i, text in enumerate(lines) if text.strip()), len(lines))
        end = start
        while end < len(lines) and lines[end].lstrip().startswith("#"):
            end += 1
        block = lines[start:end]
    else:
        end = min(line - 1, len(lines))
        while end > 0 and not lines[end - 1].strip():
            end -= 1
        start = end
        while start > 0 and lines[start - 1].lstrip().startswith("#"):
            start -= 1
        block = lines[start:end]
    text = "\n".join(re.sub(r"^\s*# ?", "", row) for row in block)
    return textwrap.dedent(text).strip()


_DOC_COMMENT = re.compile(r"#:\s?(.*)$")


def param_doc(lines: list[str], line: int) -> str:
    """An input's doc-comment: a ``#:`` comment ending its line, else the ``#:`` lines right above it.

    Example: ``question: str,  #: the question to answer``. Write each documented input on its own line.
    """
    if not 0 < line <= len(lines):
        return ""
    own = lines[line - 1]
    found = _DOC_COMMENT.search(own)
    if found and own.count('"', 0, found.start()) % 2 == 0:
        return found.group(1).strip()
    above: list[str] = []
    row = line - 2
    while row >= 0 and lines[row].lstrip().startswith("#:"):
        above.insert(0, lines[row].lstrip()[2:].strip())
        row -= 1
    return " ".join(above)


def _regex(file: str, token: Token) -> ast.RegexLit:
    raw = str(token)
    end = raw.rfind("/")
    pattern = raw[1:end].replace("\\/", "/")
    return ast.RegexLit(span=_span_of(file, token), pattern=pattern, flags=raw[end + 1 :])


@v_args(meta=True)
class _Builder(Transformer[Token, Any]):
    """Turns the Lark tree into pydantic AST nodes; step rules go to their step kinds' builders."""

    def __init__(self, file: str, text: str = "") -> None:
        super().__init__()
        self.file = file
        self.lines = text.split("\n")

    def _s(self, meta: Any) -> Span:
        return _span_of(self.file, meta)

    def span(self, item: Any) -> Span:
        """The span of a token or of a rule's meta (for step kinds' builders)."""
        return _span_of(self.file, item)

    def regex_lit(self, token: Token) -> ast.RegexLit:
        """A /regex/ token as a literal node (for step kinds' builders)."""
        return _regex(self.file, token)

    def __default__(self, data: Any, children: list[Any], meta: Any) -> Any:
        build = BUILDERS.get(str(data))
        if build is None:
            return super().__default__(data, children, meta)
        return build(self, children, meta)

    # top level
    def start(self, meta: Any, items: list[Any]) -> ast.Module:
        imports = [i for i in items if isinstance(i, ast.Import)]
        recipes = [i for i in items if isinstance(i, ast.RecipeDecl)]
        return ast.Module(span=self._s(meta), file=self.file, imports=imports, recipes=recipes)

    def import_decl(self, meta: Any, c: list[Any]) -> ast.Import:
        return ast.Import(span=self._s(meta), path=decode_string(c[0]), alias=str(c[1]) if c[1] else None)

    def recipe(self, meta: Any, c: list[Any]) -> ast.RecipeDecl:
        name, *rest = c
        body, returns = rest[-1], rest[-2]
        params = [p for p in rest[:-2] if p is not None]
        span = _span_of(self.file, name)
        doc = header_comment(self.lines, meta.line) or header_comment(self.lines, 1, at_top=True)
        return ast.RecipeDecl(span=span, name=str(name), params=params, returns=returns or [], body=body, doc=doc)

    def returns(self, meta: Any, c: list[Any]) -> list[ast.OutField]:
        return [f for f in c if f is not None]

    def out_field(self, meta: Any, c: list[Any]) -> ast.OutField:
        return ast.OutField(span=self._s(meta), name=str(c[0]), type=c[1])

    def param(self, meta: Any, c: list[Any]) -> ast.Param:
        return ast.Param(span=_span_of(self.file, c[0]), name=str(c[0]), type=c[1], default=c[2],
                         doc=param_doc(self.lines, c[0].line))

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
            self._limit("string", len(body) - 2, body)
            body_span = _span_of(self.file, body)
            return ast.PromptDecl(span=span, name=str(name), text=decode_string(body), body_span=body_span)
        turns, body_span = body
        return ast.PromptDecl(span=span, name=str(name), turns=turns, body_span=body_span)

    def chat(self, meta: Any, c: list[Any]) -> tuple[list[ast.Turn], Span]:
        return c, self._s(meta)

    def turn(self, meta: Any, c: list[Any]) -> ast.Turn:
        self._limit("string", len(c[1]) - 2, c[1])
        return ast.Turn(span=_span_of(self.file, c[0]), role=str(c[0]), text=decode_string(c[1]))

    def splice(self, meta: Any, c: list[Any]) -> ast.Turn:
        names = c[1]
        expr: Any = ast.Name(span=self._s(meta), id=names[0])
        for attr in names[1:]:
            expr = ast.Attr(span=self._s(meta), value=expr, attr=attr)
        return ast.Turn(span=_span_of(self.file, c[0]), role=str(c[0]), splice=expr)

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

    def dotted(self, meta: Any, c: list[Any]) -> list[str]:
        return [str(t) for t in c]

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
        try:
            value: Any = float(raw) if any(ch in raw for ch in ".eE") else int(raw)
        except ValueError as exc:  # more digits than Python converts
            raise _BuildError(Diagnostic(code="SF115", message=f"number too long ({len(raw)} digits)",
                                         span=self._s(meta), hint="write it as a string or in e-notation")) from exc
        return ast.Const(span=self._s(meta), value=value)

    def string(self, meta: Any, c: list[Any]) -> ast.Const:
        self._limit("string", len(c[0]) - 2, meta)
        return ast.Const(span=self._s(meta), value=decode_string(c[0]))

    def _limit(self, what: str, size: int, where: Any) -> None:
        """Refuse a literal past its size limit (SF119); ``where`` is a rule's meta or a token."""
        problem = literal_problem(what, size, _span_of(self.file, where))
        if problem is not None:
            raise _BuildError(problem)

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
        self._limit("list", len(c), meta)
        return ast.ListExpr(span=self._s(meta), items=[x for x in c if x is not None])

    def dict_lit(self, meta: Any, c: list[Any]) -> ast.DictExpr:
        self._limit("dict", len(c), meta)
        pairs = [p for p in c if p is not None]
        return ast.DictExpr(span=self._s(meta), keys=[k for k, _ in pairs], values=[v for _, v in pairs])

    def pair(self, meta: Any, c: list[Any]) -> tuple[str, Any]:
        return decode_string(c[0]), c[1]
