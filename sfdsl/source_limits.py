"""Limits on a source text, checked before it is parsed, so compile time and memory stay linear in its size.

Also makes line endings uniform: CR, LF and CRLF all end a line (and a UTF-8 byte-order mark is dropped).
The parser counts tokens against ``MAX_TOKENS`` (``too_many_tokens``), and literal sizes (list and dict items,
string characters) are checked as the AST is built (``literal_problem``).
"""

from __future__ import annotations

from sfdsl.diagnostics import Diagnostic, Span

#: Largest source file that compiles, in bytes (UTF-8).
MAX_SOURCE_BYTES = 1 << 20
#: Longest line, in characters.
MAX_LINE_CHARS = 100_000
#: Most items of one list or dict literal.
MAX_LITERAL_ITEMS = 10_000
#: Longest string literal, in characters.
MAX_STRING_CHARS = 200_000
#: Most tokens (words, numbers, strings, symbols) of one file; the recipes of recipes/ have 60 to 300 each.
MAX_TOKENS = 50_000


def normalize_newlines(text: str) -> str:
    """``text`` with every CRLF and lone CR turned into LF, and without a leading byte-order mark."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" not in text:
        return text
    return text.replace("\r\n", "\n").replace("\r", "\n")


def too_large(file: str, data: bytes) -> Diagnostic | None:
    """SF117 when ``data`` (a file's first bytes, possibly cut) is over ``MAX_SOURCE_BYTES``, located where the
    limit is crossed; else None."""
    if len(data) <= MAX_SOURCE_BYTES:
        return None
    head = data[:MAX_SOURCE_BYTES]
    line = head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n") + 1
    start = max(head.rfind(b"\n"), head.rfind(b"\r")) + 1
    column = len(head[start:].decode("utf-8", errors="replace")) + 1
    return Diagnostic(code="SF117", message=f"source file too large (more than {MAX_SOURCE_BYTES} bytes)",
                      span=Span(file=file, line=line, column=column, end_line=line, end_column=column + 1),
                      hint="split it into files and `import` them")


def source_problem(text: str, file: str) -> Diagnostic | None:
    """SF117 for a text over ``MAX_SOURCE_BYTES``, SF118 for its first line over ``MAX_LINE_CHARS``; else None.

    ``text`` has LF line endings (see ``normalize_newlines``).
    """
    if len(text) > MAX_SOURCE_BYTES // 4:  # only then can the UTF-8 size be over the limit
        problem = too_large(file, text.encode("utf-8", errors="surrogatepass"))
        if problem is not None:
            return problem
    if len(text) <= MAX_LINE_CHARS:
        return None
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if len(line) > MAX_LINE_CHARS:
            column = MAX_LINE_CHARS + 1
            return Diagnostic(code="SF118", message=f"line too long (more than {MAX_LINE_CHARS} characters)",
                              span=Span(file=file, line=number, column=column, end_line=number,
                                        end_column=column + 1),
                              hint="break it over several lines; long text fits in a \"\"\"triple-quoted\"\"\" string")
        start += len(line) + 1
    return None


def too_many_tokens(span: Span) -> Diagnostic:
    """SF120 at the token past ``MAX_TOKENS``."""
    return Diagnostic(code="SF120", message=f"too much code in one file (more than {MAX_TOKENS} tokens)", span=span,
                      hint="split it into files and `import` them, or pass large data as a recipe input")


def literal_problem(what: str, size: int, span: Span) -> Diagnostic | None:
    """SF119 when a literal is over its limit: ``what`` is "list", "dict" (items) or "string" (characters)."""
    limit, unit = (MAX_STRING_CHARS, "characters") if what == "string" else (MAX_LITERAL_ITEMS, "items")
    if size <= limit:
        return None
    return Diagnostic(code="SF119", message=f"{what} literal too large ({size} {unit}, limit {limit})",
                      span=span, hint="pass large data as a recipe input instead")
