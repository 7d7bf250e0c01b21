"""Hypothesis drives the real `sfrun lsp` over stdio: after any random edits the server answers every request."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.lsp.client import LanguageClient

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*.sf"))
SERVER = [sys.executable, "-c", "from sfdsl.cli import main; raise SystemExit(main(['lsp']))"]
EDITS = ["", "(", ")", "{", "}", ".", ",", ":", '"', '"""', "{{", "generate ", "v.", "call ", "# c", "\n", "=",
         "x = vote a by ", "refine x as c {", "/re/", "import \"x.sf\"\n", "recipe", "\t", "é", "\U0001f600"]
T = TypeVar("T")


class Session:
    """A language client on an event loop of its own thread, so synchronous hypothesis tests can drive it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = LanguageClient("fuzz", "1")
        self.run(self._start())

    def run(self, coroutine: Coroutine[Any, Any, T] | Awaitable[T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    async def _start(self) -> None:
        await self.client.start_io(*SERVER)
        await self.client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        self.client.initialized(types.InitializedParams())

    async def _stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    def close(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    started = Session()
    yield started
    started.close()


def position(text: str, offset: int) -> types.Position:
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


async def ask_everything(client: LanguageClient, uri: str, text: str, where: types.Position) -> None:
    doc = types.TextDocumentIdentifier(uri=uri)
    whole = types.Range(start=types.Position(line=0, character=0), end=position(text, len(text)))
    await client.text_document_hover_async(types.HoverParams(text_document=doc, position=where))
    await client.text_document_completion_async(types.CompletionParams(text_document=doc, position=where))
    await client.text_document_definition_async(types.DefinitionParams(text_document=doc, position=where))
    await client.text_document_references_async(types.ReferenceParams(
        text_document=doc, position=where, context=types.ReferenceContext(include_declaration=True)))
    await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc))
    await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc, range=whole, context=types.CodeActionContext(diagnostics=[])))
    await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc, options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=doc, range=whole))


COUNTER = iter(range(10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.sampled_from(RECIPES), st.data())
def test_server_answers_every_request_after_random_edits(session: Session, path: Path, data: st.DataObject) -> None:
    client = session.client
    uri = (REPO / "tests" / "fixtures" / "lsp" / f"fuzz{next(COUNTER)}.sf").as_uri()
    text = path.read_text(encoding="utf-8")
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="sf", version=1, text=text)))
    for version in range(2, 2 + data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 30))
        start, end = position(text, at), position(text, min(len(text), at + cut))
        insert = data.draw(st.sampled_from(EDITS))
        text = text[:at] + insert + text[at + cut:]
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=start, end=end), text=insert)]))
        session.run(ask_everything(client, uri, text, position(text, data.draw(st.integers(0, len(text))))))
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(
        uri=uri)))
