"""Parsing a document recipe by recipe, reusing the recipes a change did not touch.

An editor changes one recipe at a time. The document is cut at its top-level items (each recipe with the
comments above it); each piece is parsed alone, padded so that its spans are those of the whole file, and
kept in a cache keyed by its text and place. A piece with syntax errors reports them and is left out, so
the other recipes are still checked.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.errors import CompileError
from sfdsl.lsp.lexicon import Lexicon
from sfdsl.parser import parse

#: Pieces remembered per document (a few edits' worth beyond the file's own).
CACHE_SIZE = 512


@dataclass
class Piece:
    """One parsed piece: its imports and recipes, or its syntax errors."""

    imports: list[ast.Import] = field(default_factory=list)
    recipes: list[ast.RecipeDecl] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the recipes the piece defines, broken or not


@dataclass
class PieceCache:
    """Parsed pieces by (file, start line, start column, text)."""

    pieces: OrderedDict[tuple[str, int, int, str], Piece] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # checks run in a thread beside requests

    def get(self, key: tuple[str, int, int, str]) -> Piece | None:
        with self.lock:
            piece = self.pieces.get(key)
            if piece is not None:
                self.pieces.move_to_end(key)
            return piece

    def put(self, key: tuple[str, int, int, str], piece: Piece) -> None:
        with self.lock:
            self.pieces[key] = piece
            while len(self.pieces) > CACHE_SIZE:
                self.pieces.popitem(last=False)


def parse_pieces(lex: Lexicon, file: str, cache: PieceCache) -> tuple[ast.Module, list[Diagnostic], list[str]]:
    """The module of every piece that parses, the syntax errors of those that do not, and the names of the
    recipes left out."""
    text = lex.text
    header = _header(text)
    imports: list[ast.Import] = []
    recipes: list[ast.RecipeDecl] = []
    diagnostics: list[Diagnostic] = []
    broken: list[str] = []
    for start, end in _cuts(lex):
        line, column = lex.position(start)
        key = (file, line, column, text[start:end])
        piece = cache.get(key)
        if piece is None:
            piece = _parse_piece(text[start:end], file, line, column, header)
            cache.put(key, piece)
        imports += piece.imports
        recipes += piece.recipes
        diagnostics += piece.diagnostics
        if piece.diagnostics:
            broken += piece.names
    module = ast.Module(span=Span(file=file), file=file, imports=imports, recipes=recipes)
    return module, diagnostics, broken


def _cuts(lex: Lexicon) -> list[tuple[int, int]]:
    """Offsets of the pieces: each recipe from the end of the one before; what follows the last one joins it."""
    bounds = [end for _, _, _, end in lex.recipes]
    cuts, start = [], 0
    for end in bounds:
        cuts.append((start, end))
        start = end
    if start < len(lex.text):
        if cuts and not lex.text[start:].strip():
            cuts[-1] = (cuts[-1][0], len(lex.text))
        else:
            cuts.append((start, len(lex.text)))
    return cuts


def _header(text: str) -> list[str]:
    """The comment block that opens the file (a recipe without a comment of its own documents itself by it)."""
    lines = text.split("\n")
    first = next((i for i, row in enumerate(lines) if row.strip()), len(lines))
    end = first
    while end < len(lines) and lines[end].lstrip().startswith("#"):
        end += 1
    return lines[:end]


def _parse_piece(piece: str, file: str, line: int, column: int, header: list[str]) -> Piece:
    names = [name for name, *_ in Lexicon(piece).recipes]
    pad = header + [""] * (line - len(header)) if line > len(header) else [""] * line
    text = "\n".join(pad) + ("\n" if pad else "") + " " * column + piece if line else " " * column + piece
    try:
        module = parse(text, file=file)
    except CompileError as exc:
        return Piece(diagnostics=list(exc.diagnostics), names=names)
    return Piece(imports=list(module.imports), recipes=list(module.recipes), names=names)
