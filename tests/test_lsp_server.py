"""`sfrun lsp` end to end: pytest-lsp drives the real server over stdio."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from sfdsl.formatter import format_source

pytestmark = pytest.mark.asyncio

HERE = Path(__file__).resolve().parent / "fixtures" / "lsp"
MAIN = HERE / "main.sf"  # never written: the editor holds the text
URI = MAIN.as_uri()
SERVER = [sys.executable, "-c", "from sfdsl.cli import main; raise SystemExit(main(['lsp']))"]

GOOD = '''import "lib.sf" as lib

recipe solve_it(question: str, n: int = 3) -> (answer, score, helped) {
  prompt solve = "Q: {{ question }}"
  samples = generate solve (n: n, temperature: 0.7)
  v = vote samples by majority
  helped = call lib.helper(question: question)
  return answer: v.answer, score: v.share, helped: helped
}
'''


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=HERE.as_uri()))
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, text: str, version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=URI, language_id="sf", version=version, text=text)))


def change(client: LanguageClient, text: str, version: int) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=version),
        content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))


async def diagnostics_after(client: LanguageClient, action: object) -> list[types.Diagnostic]:
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return list(client.diagnostics[URI])


def at(text: str, needle: str, shift: int = 0) -> types.Position:
    """The position of ``needle`` (plus ``shift`` characters) in ``text``."""
    offset = text.index(needle) + shift
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


def doc() -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=URI)


BROKEN = '''recipe a(q: str) {
  x = generate p (n: 3
  y = [1 2]
  return answer: q +
}

recipe b(q: str) {
  z = "s" * true
  return answer: z
}
'''
FIXED = BROKEN.replace("(n: 3\n", "(n: 3)\n").replace("[1 2]", "[1, 2]").replace("q +\n", "q\n") \
    .replace('"s" * true', '"s"').replace("recipe a(q: str) {\n", 'recipe a(q: str) {\n  prompt p = "hi"\n') \
    .replace("  return answer: q\n", "  _u = x\n  _w = y\n  return answer: q\n")


async def test_diagnostics_for_syntax_and_type_errors_then_cleared(client: LanguageClient) -> None:
    open_doc(client, BROKEN)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    found = sorted(client.diagnostics[URI], key=lambda d: (d.range.start.line, d.range.start.character))
    assert [(d.code, d.range.start.line, d.range.start.character) for d in found] == [
        ("SF104", 1, 17), ("SF112", 2, 9), ("SF100", 4, 0), ("SF301", 7, 6)]
    assert all(d.severity == types.DiagnosticSeverity.Error and d.source == "sfdsl" for d in found)
    assert "hint: add the matching ')'" in found[0].message
    change(client, FIXED, 2)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [d.message for d in client.diagnostics[URI]] == []


async def test_hover_on_generate_shows_the_parameter_table(client: LanguageClient) -> None:
    open_doc(client, GOOD)
    result = await client.text_document_hover_async(types.HoverParams(text_document=doc(),
                                                                      position=at(GOOD, "generate", 2)))
    assert result is not None
    text = result.contents.value  # type: ignore[union-attr]
    row = next(line for line in text.splitlines() if line.startswith("| `temperature`"))
    assert "`float`" in row and "sampling temperature" in row


async def test_hover_on_a_name_shows_its_type_and_on_a_recipe_its_bound(client: LanguageClient) -> None:
    open_doc(client, GOOD)
    name = await client.text_document_hover_async(types.HoverParams(text_document=doc(), position=at(GOOD, "v =")))
    assert "v: vote" in name.contents.value  # type: ignore[union-attr]
    recipe = await client.text_document_hover_async(types.HoverParams(text_document=doc(),
                                                                      position=at(GOOD, "solve_it", 1)))
    value = recipe.contents.value  # type: ignore[union-attr]
    assert "recipe solve_it(question: str, n: int = 3) -> (answer, score, helped)" in value and "model calls" in value


async def test_completion_of_step_parameters(client: LanguageClient) -> None:
    text = GOOD.replace("  v = vote", "  w = generate solve (\n  v = vote")
    open_doc(client, text)
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=doc(), position=at(text, "generate solve (\n", len("generate solve ("))))
    labels = {item.label for item in result.items}  # type: ignore[union-attr]
    assert {"n", "temperature", "max_tokens"} <= labels
    temperature = next(i for i in result.items if i.label == "temperature")  # type: ignore[union-attr]
    assert temperature.detail and temperature.detail.startswith("float")


async def test_completion_of_vote_fields(client: LanguageClient) -> None:
    text = GOOD.replace("  return answer:", "  x = v.\n  return answer:")
    open_doc(client, text)
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=doc(), position=at(text, "v.\n", 2)))
    labels = {item.label for item in result.items}  # type: ignore[union-attr]
    assert {"share", "answer", "votes"} <= labels


async def test_go_to_definition_of_a_prompt_and_across_an_import(client: LanguageClient) -> None:
    open_doc(client, GOOD)
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc(), position=at(GOOD, "generate solve", len("generate s"))))
    assert [(loc.uri, loc.range.start.line, loc.range.start.character) for loc in found] == [  # type: ignore[union-attr]
        (URI, 3, 9)]
    imported = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc(), position=at(GOOD, "lib.helper", len("lib.he"))))
    assert [(loc.uri, loc.range.start.line) for loc in imported] == [  # type: ignore[union-attr]
        ((HERE / "lib.sf").as_uri(), 1)]


async def test_references_of_a_name(client: LanguageClient) -> None:
    open_doc(client, GOOD)
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(), position=at(GOOD, "samples ="), context=types.ReferenceContext(include_declaration=True)))
    assert [loc.range.start.line for loc in found] == [4, 5]  # type: ignore[union-attr]


async def test_did_you_mean_code_action_fixes_a_typo(client: LanguageClient) -> None:
    text = GOOD.replace("vote samples by", "vote sampels by")
    open_doc(client, text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    typo = next(d for d in client.diagnostics[URI] if d.code == "SF201")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(), range=typo.range, context=types.CodeActionContext(diagnostics=[typo])))
    assert actions
    edit = actions[0].edit.changes[URI][0]  # type: ignore[union-attr]
    assert edit.new_text == "samples" and edit.range == typo.range


async def test_document_symbols_and_inlay_bound(client: LanguageClient) -> None:
    open_doc(client, GOOD)
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc()))
    recipe = symbols[0]  # type: ignore[index]
    assert recipe.name == "solve_it"
    assert {"solve", "samples", "v", "helped"} <= {child.name for child in recipe.children}
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=doc(), range=types.Range(start=types.Position(line=0, character=0),
                                               end=types.Position(line=20, character=0))))
    assert hints and "model calls" in str(hints[0].label)


async def test_formatting_equals_sfrun_fmt(client: LanguageClient) -> None:
    messy = GOOD.replace("  samples = generate solve (n: n, temperature: 0.7)",
                         "samples=generate solve(n:n,temperature:0.7)")
    open_doc(client, messy)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc(), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits and edits[0].new_text == format_source(messy) == GOOD


EDITS = ["", "(", ")", "{", "}", ".", ",", ":", '"', '"""', "{{", "generate ", "v.", "call ", "# c", "\n", "="]


def position_of(text: str, offset: int) -> types.Position:
    line = text.count("\n", 0, offset)
    return types.Position(line=line, character=offset - (text.rfind("\n", 0, offset) + 1))


async def test_server_answers_every_request_after_random_edits(client: LanguageClient) -> None:
    rng = random.Random(23)
    text = (Path(__file__).resolve().parent.parent / "recipes" / "self_consistency.sf").read_text()
    open_doc(client, text)
    for version in range(2, 27):
        cut = rng.randrange(len(text) + 1)
        text = text[:cut] + rng.choice(EDITS) + text[cut + rng.randrange(12):]
        change(client, text, version)
        where = position_of(text, rng.randrange(len(text) + 1))
        whole = types.Range(start=types.Position(line=0, character=0), end=position_of(text, len(text)))
        await client.text_document_hover_async(types.HoverParams(text_document=doc(), position=where))
        await client.text_document_completion_async(types.CompletionParams(text_document=doc(), position=where))
        await client.text_document_definition_async(types.DefinitionParams(text_document=doc(), position=where))
        await client.text_document_references_async(types.ReferenceParams(
            text_document=doc(), position=where, context=types.ReferenceContext(include_declaration=True)))
        await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc()))
        await client.text_document_code_action_async(types.CodeActionParams(
            text_document=doc(), range=whole, context=types.CodeActionContext(diagnostics=[])))
        await client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=doc(), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
        await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=doc(), range=whole))
    final = GOOD.replace("lib.sf", str(HERE / "lib.sf"))
    change(client, final, 99)
    for _ in range(3):  # an earlier version's check may still be publishing
        await asyncio.wait_for(client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30)
        if not client.diagnostics[URI]:
            break
    assert list(client.diagnostics[URI]) == []


OUTSIDE = HERE.parent / "lsp_outside"
IMPORTS_OUTSIDE = '''import "../lsp_outside/shared.sf" as shared

recipe r(question: str) -> (answer) {
  got = call shared.shared(question: question)
  return answer: got
}
'''


async def test_imports_stay_confined_until_a_setting_adds_the_directory(client: LanguageClient) -> None:
    open_doc(client, IMPORTS_OUTSIDE)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [d.code for d in client.diagnostics[URI]] == ["SF506"]
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"sfdsl": {"importPath": [str(OUTSIDE)]}}))
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[URI]) == []
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc(), position=at(IMPORTS_OUTSIDE, "shared.shared(", len("shared.sh"))))
    assert [loc.uri for loc in found] == [(OUTSIDE / "shared.sf").as_uri()]  # type: ignore[union-attr]


WITH_IMPORT_PATH = f"from sfdsl.cli import main; raise SystemExit(main(['lsp', '--import-path', {str(OUTSIDE)!r}]))"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-c", WITH_IMPORT_PATH]))
async def client_with_import_path(lsp_client: LanguageClient):  # type: ignore[no-untyped-def]
    await lsp_client.initialize_session(types.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


async def test_import_path_option_reaches_the_server(client_with_import_path: LanguageClient) -> None:
    open_doc(client_with_import_path, IMPORTS_OUTSIDE)
    await client_with_import_path.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client_with_import_path.diagnostics[URI]) == []


async def test_positions_are_utf16_code_units(client: LanguageClient) -> None:
    vote = "  v = vote samples by majority"
    text = GOOD.replace(vote, vote + '\n  _g = "\U0001f600" + question')
    open_doc(client, text)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    line = text.splitlines()[6]
    utf16 = len(line[:line.index("question")].encode("utf-16-le")) // 2  # one more than the code points
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=doc(), position=types.Position(line=6, character=utf16 + 1)))
    assert found is not None and found.range is not None
    assert (found.range.start.character, found.range.end.character) == (utf16, utf16 + len("question"))
    assert "question: str" in found.contents.value  # type: ignore[union-attr]
    broken = text.replace('+ question', '+ qestion')
    change(client, broken, 2)
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    typo = next(d for d in client.diagnostics[URI] if d.code == "SF201")
    assert (typo.range.start.line, typo.range.start.character) == (6, utf16)
