"""Source spans and gcc-style diagnostics: `file:line:col: error[CODE]: message`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["error", "warning"]


class Span(BaseModel):
    """A region of a source file; lines and columns are 1-based."""

    model_config = ConfigDict(frozen=True)

    file: str = "<string>"
    line: int = 1
    column: int = 1
    end_line: int = 1
    end_column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Diagnostic(BaseModel):
    """One problem found in a recipe file."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    span: Span
    severity: Severity = "error"
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def headline(self) -> str:
        return f"{self.span}: {self.severity}[{self.code}]: {self.message}"


#: Longest part of a source line shown under a diagnostic.
SHOWN_LINE_CHARS = 160


def render(diagnostic: Diagnostic, source: str | list[str] | None) -> str:
    """Format one diagnostic with its source line and a caret underline.

    ``source`` is the file's text, or its lines already split on "\\n" (as ``render_all`` passes them).

    Example:
        recipe.sf:3:5: error[SF201]: undefined name 'critque' (did you mean 'critique'?)
            3 |   x = critque
              |       ^^^^^^^
    """
    lines = [diagnostic.headline()]
    span = diagnostic.span
    if source is not None:
        source_lines = source.split("\n") if isinstance(source, str) else source  # as the parser counts lines
        if 1 <= span.line <= len(source_lines):
            text = source_lines[span.line - 1].rstrip("\r").expandtabs(1)
            column = span.column
            if len(text) > SHOWN_LINE_CHARS:  # a window around the caret
                start = max(0, min(column - 1 - SHOWN_LINE_CHARS // 2, len(text) - SHOWN_LINE_CHARS))
                text, column = text[start:start + SHOWN_LINE_CHARS], column - start
            gutter = f"{span.line:>5} | "
            lines.append(gutter + text)
            width = (span.end_column - span.column) if span.end_line == span.line else len(text) - column + 1
            width = max(1, min(width, max(1, len(text) - column + 1)))
            lines.append(" " * (len(gutter) - 2) + "| " + " " * (column - 1) + "^" * width)
    if diagnostic.hint:
        lines.append(f"      = hint: {diagnostic.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], sources: dict[str, str]) -> str:
    """Format many diagnostics, errors and warnings, in source order."""
    ordered = sorted(diagnostics, key=lambda d: (d.span.file, d.span.line, d.span.column))
    lines = {file: text.split("\n") for file, text in sources.items() if any(d.span.file == file for d in ordered)}
    return "\n".join(render(d, lines.get(d.span.file)) for d in ordered)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A ' (did you mean ...?)' suffix for a close candidate, or None."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def with_suggestion(message: str, name: str, candidates: Iterable[str]) -> str:
    """Append a did-you-mean suggestion to a message when one exists."""
    suggestion = did_you_mean(name, candidates)
    return f"{message} ({suggestion})" if suggestion else message
