"""From the editor-neutral results of sfdsl.lsp to lsprotocol types (positions are 0-based there)."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types
from pygls.uris import from_fs_path

from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.lsp.actions import Fix
from sfdsl.lsp.analysis import Analysis
from sfdsl.lsp.completion import Item
from sfdsl.lsp.hover import resolve_import
from sfdsl.lsp.navigation import Loc
from sfdsl.lsp.symbols import Outline

SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
COMPLETION_KIND = {"keyword": types.CompletionItemKind.Keyword, "function": types.CompletionItemKind.Function,
                   "variable": types.CompletionItemKind.Variable, "field": types.CompletionItemKind.Field,
                   "property": types.CompletionItemKind.Property, "module": types.CompletionItemKind.Module,
                   "value": types.CompletionItemKind.Value}
SYMBOL_KIND = {"recipe": types.SymbolKind.Function, "prompt": types.SymbolKind.String,
               "model": types.SymbolKind.Object, "step": types.SymbolKind.Event, "name": types.SymbolKind.Variable}
LINE_MENTION = re.compile(r"\bline (\d+)\b")


def uri_of(file: str) -> str:
    return from_fs_path(file) or file


def span_range(span: Span) -> types.Range:
    return types.Range(start=types.Position(line=max(0, span.line - 1), character=max(0, span.column - 1)),
                       end=types.Position(line=max(0, span.end_line - 1), character=max(0, span.end_column - 1)))


def loc_range(loc: Loc | Fix) -> types.Range:
    return types.Range(start=types.Position(line=loc.line, character=loc.character),
                       end=types.Position(line=loc.end_line, character=loc.end_character))


def location(loc: Loc) -> types.Location:
    return types.Location(uri=uri_of(loc.file), range=loc_range(loc))


def diagnostics(analysis: Analysis, uri: str, import_path: list[str]) -> list[types.Diagnostic]:
    """Every diagnostic of the program, shown on this document: its own where they are, an imported file's at
    the import that brings it in (with the place in that file as related information)."""
    shown = []
    for d in analysis.diagnostics:
        message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
        related = _mentions(d, uri)
        range_ = span_range(d.span)
        if d.span.file != analysis.file:
            related.append(types.DiagnosticRelatedInformation(
                location=types.Location(uri=uri_of(d.span.file), range=span_range(d.span)), message=d.message))
            range_ = _import_range(analysis, d.span.file, import_path)
            message = f"in {d.span.file}: {message}"
        shown.append(types.Diagnostic(range=range_, message=message, severity=SEVERITY[d.severity], code=d.code,
                                      source="sfdsl", related_information=related or None))
    return shown


def _mentions(d: Diagnostic, uri: str) -> list[types.DiagnosticRelatedInformation]:
    """'first defined at line 3' and the like: the line named, as related information."""
    related = []
    for match in LINE_MENTION.finditer(f"{d.message} {d.hint or ''}"):
        line = int(match.group(1)) - 1
        where = types.Range(start=types.Position(line=line, character=0), end=types.Position(line=line, character=0))
        related.append(types.DiagnosticRelatedInformation(location=types.Location(uri=uri, range=where),
                                                          message=match.group(0)))
    return related


def _import_range(analysis: Analysis, file: str, import_path: list[str]) -> types.Range:
    for imp in analysis.module.imports if analysis.module else []:
        target = resolve_import(analysis.file, imp.path, import_path)
        if target is not None and str(target) == str(Path(file)):
            return span_range(imp.span)
    return types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0))


def completion(item: Item) -> types.CompletionItem:
    doc = types.MarkupContent(kind=types.MarkupKind.Markdown, value=item.doc) if item.doc else None
    return types.CompletionItem(label=item.label, kind=COMPLETION_KIND.get(item.kind), detail=item.detail or None,
                                documentation=doc, insert_text=item.insert)


def symbol(outline: Outline) -> types.DocumentSymbol:
    return types.DocumentSymbol(name=outline.name, kind=SYMBOL_KIND[outline.kind], detail=outline.detail or None,
                                range=span_range(outline.span), selection_range=span_range(outline.selection),
                                children=[symbol(child) for child in outline.children] or None)


def code_action(fix: Fix, uri: str, diagnostic: types.Diagnostic | None) -> types.CodeAction:
    edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(range=loc_range(fix), new_text=fix.new_text)]})
    return types.CodeAction(title=fix.title, kind=types.CodeActionKind.QuickFix, edit=edit,
                            diagnostics=[diagnostic] if diagnostic else None, is_preferred=True)
