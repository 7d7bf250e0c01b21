"""The pygls server: wires documents to the analysis and each LSP request to its feature module."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from sfdsl.errors import CompileError
from sfdsl.formatter import format_source
from sfdsl.log import get_logger
from sfdsl.lsp import convert, units
from sfdsl.lsp.actions import fixes
from sfdsl.lsp.analysis import Analysis, analyze
from sfdsl.lsp.chunks import PieceCache
from sfdsl.lsp.completion import complete
from sfdsl.lsp.hover import hover
from sfdsl.lsp.lexicon import Lexicon
from sfdsl.lsp.navigation import definition, references
from sfdsl.lsp.symbols import outline

log = get_logger(__name__)

#: Seconds a change waits for the next keystroke before the document is checked again.
DEBOUNCE_S = 0.05
NAME, VERSION = "sfdsl", "0.1.0"
T = TypeVar("T")


@dataclass
class Checked:
    """The latest analysis of one document version."""

    version: int | None
    analysis: Analysis
    lexicon: Lexicon


@dataclass
class State:
    """What the server remembers: search directories, the last analysis per document, pending checks."""

    import_path: list[str]
    settings_path: list[str] = field(default_factory=list)
    checked: dict[str, Checked] = field(default_factory=dict)
    pending: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    pieces: dict[str, PieceCache] = field(default_factory=dict)
    root: Path | None = None

    def search_path(self) -> list[str]:
        extra = [str((self.root / p) if self.root and not Path(p).is_absolute() else Path(p))
                 for p in self.settings_path]
        return [*self.import_path, *extra]


class SfLanguageServer(LanguageServer):
    """A LanguageServer holding the sfdsl state."""

    def __init__(self, import_path: list[str]) -> None:
        super().__init__(NAME, VERSION, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.state = State(import_path=import_path)

    def checked(self, uri: str) -> Checked:
        """The analysis of the document's current text (computed now when the cached one is stale)."""
        doc = self.workspace.get_text_document(uri)
        cached = self.state.checked.get(uri)
        if cached is not None and cached.version == doc.version and cached.analysis.text == doc.source:
            return cached
        analysis = analyze(doc.source, _file(doc.path, uri), self.state.search_path(), self.cache(uri))
        fresh = Checked(doc.version, analysis, analysis.lexicon)
        self.state.checked[uri] = fresh
        return fresh

    def cache(self, uri: str) -> PieceCache:
        """The parsed pieces of this document's recent texts."""
        return self.state.pieces.setdefault(uri, PieceCache())

    def with_facts(self, uri: str, line: int) -> Checked:
        """Like ``checked``, but when the text does not parse, the analysis of it without the cursor's line
        (what the author is typing), so names and types are still known."""
        checked = self.checked(uri)
        if checked.analysis.complete:
            return checked
        lines = checked.analysis.text.split("\n")
        if 0 <= line < len(lines):
            lines[line] = " " * len(lines[line])
        repaired = analyze("\n".join(lines), checked.analysis.file, self.state.search_path(), self.cache(uri))
        return Checked(checked.version, repaired, checked.lexicon)

    def publish(self, uri: str, checked: Checked | None = None) -> None:
        checked = checked or self.checked(uri)
        shown = _out(self, uri, convert.diagnostics(checked.analysis, uri, self.state.search_path()))
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=shown, version=checked.version))

    def schedule(self, uri: str, delay: float = DEBOUNCE_S) -> None:
        """Check the document after ``delay``, unless another change comes first."""
        previous = self.state.pending.pop(uri, None)
        if previous is not None:
            previous.cancel()
        self.state.pending[uri] = asyncio.get_running_loop().create_task(self._check_later(uri, delay))

    async def _check_later(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            checked = await asyncio.to_thread(self.checked, uri)  # the loop keeps answering requests meanwhile
            self.publish(uri, checked)
        except Exception as exc:  # a bug must not take the editor's server down
            log.error("lsp_check_failed", uri=uri, error=repr(exc))
        finally:
            if self.state.pending.get(uri) is asyncio.current_task():
                del self.state.pending[uri]


def _file(path: str, uri: str) -> str:
    return path if path and uri.startswith("file:") else f"<{uri}>"


def _offset(ls: SfLanguageServer, uri: str, checked: Checked, position: types.Position) -> int:
    found = units.from_client(ls.workspace.get_text_document(uri), position)
    return checked.lexicon.offset(found.line, found.character)


def _at(ls: SfLanguageServer, checked: Checked, params: Any) -> int:
    """The offset of a request's position (``params.text_document``, ``params.position``)."""
    return _offset(ls, params.text_document.uri, checked, params.position)


def _out(ls: SfLanguageServer, uri: str, value: T) -> T:
    """A result with its positions in the client's units."""
    return units.to_client(ls.workspace.get_text_document(uri), value)  # type: ignore[no-any-return]


def build_server(import_path: list[str] | None = None) -> SfLanguageServer:
    """The language server, its features registered; ``import_path`` as `--import-path` gives it."""
    server = SfLanguageServer(list(import_path or []))

    @server.feature(types.INITIALIZE)
    def initialize(ls: SfLanguageServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        paths = options.get("importPath", []) if isinstance(options, dict) else []
        ls.state.settings_path = [str(p) for p in paths if isinstance(p, str)]

    @server.feature(types.INITIALIZED)
    def initialized(ls: SfLanguageServer, params: types.InitializedParams) -> None:
        root = ls.workspace.root_path
        ls.state.root = Path(root) if root else None

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: SfLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, delay=0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: SfLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: SfLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, delay=0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SfLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = ls.state.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.state.checked.pop(uri, None)
        ls.state.pieces.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: SfLanguageServer, params: types.DidChangeConfigurationParams) -> None:
        settings: Any = params.settings or {}
        section = settings.get("sfdsl", settings) if isinstance(settings, dict) else {}
        paths = section.get("importPath", []) if isinstance(section, dict) else []
        ls.state.settings_path = [str(p) for p in paths if isinstance(p, str)]
        ls.state.checked.clear()
        for uri in list(ls.workspace.text_documents):
            ls.schedule(uri, delay=0)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: SfLanguageServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        checked = ls.with_facts(uri, params.position.line)
        offset = _offset(ls, uri, checked, params.position)
        found = hover(checked.analysis, checked.lexicon, offset, ls.state.search_path())
        if found is None:
            return None
        lex = checked.lexicon
        (line, char), (end_line, end_char) = lex.position(found.start), lex.position(found.end)
        where = types.Range(start=types.Position(line=line, character=char),
                            end=types.Position(line=end_line, character=end_char))
        markdown = types.MarkupContent(kind=types.MarkupKind.Markdown, value=found.markdown)
        return _out(ls, uri, types.Hover(contents=markdown, range=where))

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=[".", "(", ",", " ", "{"]))
    def on_completion(ls: SfLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        checked = ls.with_facts(params.text_document.uri, params.position.line)
        items = complete(checked.analysis, checked.lexicon, _at(ls, checked, params))
        return types.CompletionList(is_incomplete=False, items=[convert.completion(i) for i in items])

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: SfLanguageServer, params: types.DefinitionParams) -> list[types.Location]:
        checked = ls.with_facts(params.text_document.uri, params.position.line)
        found = definition(checked.analysis, checked.lexicon, _at(ls, checked, params),
                           ls.state.search_path())
        return _out(ls, params.text_document.uri, [convert.location(loc) for loc in found])

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def on_references(ls: SfLanguageServer, params: types.ReferenceParams) -> list[types.Location]:
        checked = ls.checked(params.text_document.uri)
        found = references(checked.analysis, checked.lexicon, _at(ls, checked, params),
                           include_declaration=params.context.include_declaration)
        uri = params.text_document.uri
        return _out(ls, uri, [types.Location(uri=uri, range=convert.loc_range(loc)) for loc in found])

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls: SfLanguageServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        module = ls.checked(params.text_document.uri).analysis.module
        symbols = [convert.symbol(o) for o in outline(module)] if module is not None else []
        return _out(ls, params.text_document.uri, symbols)

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def on_code_action(ls: SfLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        uri = params.text_document.uri
        checked = ls.checked(uri)
        wanted = params.range
        actions = []
        for d in checked.analysis.diagnostics:
            if d.span.file != checked.analysis.file or not _overlaps(convert.span_range(d.span), wanted):
                continue
            shown = next((c for c in params.context.diagnostics if c.code == d.code
                          and c.range.start.line == d.span.line - 1), None)
            actions += [convert.code_action(fix, uri, shown) for fix in fixes(d, checked.analysis.text)]
        return _out(ls, uri, actions)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(ls: SfLanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
        doc = ls.workspace.get_text_document(params.text_document.uri)
        try:
            formatted = format_source(doc.source, file=doc.path)
        except CompileError:
            return []  # the diagnostics already say why
        if formatted == doc.source:
            return []
        lex = Lexicon(doc.source)
        end_line, end_char = lex.position(len(doc.source))
        whole = types.Range(start=types.Position(line=0, character=0),
                            end=types.Position(line=end_line, character=end_char))
        return _out(ls, params.text_document.uri, [types.TextEdit(range=whole, new_text=formatted)])

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    def on_inlay_hint(ls: SfLanguageServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        analysis = ls.checked(params.text_document.uri).analysis
        hints = []
        for recipe in analysis.module.recipes if analysis.module else []:
            bound = analysis.bounds.get(recipe.name)
            if bound is None:
                continue
            at = types.Position(line=recipe.body.span.line - 1, character=recipe.body.span.column)
            hints.append(types.InlayHint(position=at, label=f"bound: {bound}", padding_left=True,
                                         kind=types.InlayHintKind.Type))
        return _out(ls, params.text_document.uri, hints)

    return server


def _overlaps(a: types.Range, b: types.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)
