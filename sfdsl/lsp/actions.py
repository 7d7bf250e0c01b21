"""Quick fixes: the mechanical hints of diagnostics (did-you-mean replacements, a missing loop bound)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sfdsl.diagnostics import Diagnostic

SUGGESTION = re.compile(r"did you mean '([^']+)'\?")
QUOTED = re.compile(r"'([^']+)'")
MISSING_BOUND = re.compile(r"needs `(\w+):`")
#: The value a quick fix gives a missing loop bound.
DEFAULT_BOUND = 3


@dataclass(frozen=True)
class Fix:
    """Replace the text between two 0-based (line, character) positions by ``new_text``."""

    title: str
    line: int
    character: int
    end_line: int
    end_character: int
    new_text: str


def fixes(diagnostic: Diagnostic, text: str) -> list[Fix]:
    """The quick fixes a diagnostic's message or hint spells out."""
    found = _did_you_mean(diagnostic, text)
    if diagnostic.code == "SF410":
        found += _missing_bound(diagnostic, text)
    return found


def _did_you_mean(diagnostic: Diagnostic, text: str) -> list[Fix]:
    match = SUGGESTION.search(diagnostic.message) or SUGGESTION.search(diagnostic.hint or "")
    wrong = QUOTED.search(diagnostic.message)
    if match is None or wrong is None or wrong.group(1) == match.group(1):
        return []
    lines = text.split("\n")
    line = diagnostic.span.line - 1
    if not 0 <= line < len(lines):
        return []
    word = re.compile(rf"(?<![\w.]){re.escape(wrong.group(1))}(?!\w)")
    hit = word.search(lines[line], max(0, diagnostic.span.column - 1)) or word.search(lines[line])
    if hit is None:
        return []
    title = f"Replace '{wrong.group(1)}' with '{match.group(1)}'"
    return [Fix(title, line, hit.start(), line, hit.end(), match.group(1))]


def _missing_bound(diagnostic: Diagnostic, text: str) -> list[Fix]:
    name = MISSING_BOUND.search(diagnostic.message)
    lines = text.split("\n")
    line = diagnostic.span.line - 1
    if name is None or not 0 <= line < len(lines):
        return []
    row = lines[line]
    start = max(0, diagnostic.span.column - 1)
    brace = row.find("{", start)
    paren = row.find("(", start)
    title = f"Add `{name.group(1)}: {DEFAULT_BOUND}`"
    if 0 <= paren < (brace if brace >= 0 else len(row)):
        closing = row.find(")", paren)
        empty = closing >= 0 and not row[paren + 1:closing].strip()
        insert = f"{name.group(1)}: {DEFAULT_BOUND}" + ("" if empty else ", ")
        return [Fix(title, line, paren + 1, line, paren + 1, insert)]
    if brace >= 0:
        return [Fix(title, line, brace, line, brace, f"({name.group(1)}: {DEFAULT_BOUND}) ")]
    return []
