"""Diagnostics in LSP form: ranges, codes, hints, related locations, and imported files' problems."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from sfdsl.lsp.analysis import analyze
from sfdsl.lsp.convert import diagnostics

HERE = Path(__file__).resolve().parent / "fixtures" / "lsp"
URI = (HERE / "main.sf").as_uri()


def test_a_second_definition_points_at_the_first() -> None:
    text = "recipe r() {\n  x = 1\n  x = 2\n  return x\n}\n"
    found = diagnostics(analyze(text, str(HERE / "main.sf")), URI, [])
    assert {d.code: d.severity for d in found} == {"SF208": types.DiagnosticSeverity.Error,
                                                    "SF901": types.DiagnosticSeverity.Warning}
    shown = next(d for d in found if d.code == "SF208")
    assert shown.range.start == types.Position(line=2, character=2)
    assert shown.related_information and shown.related_information[0].location.range.start.line == 1


def test_problems_of_an_imported_file_show_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "lib.sf").write_text("recipe helper() {\n  return answer: nope\n}\n")
    text = 'import "lib.sf"\n\nrecipe r() {\n  return answer: 1\n}\n'
    shown = diagnostics(analyze(text, str(tmp_path / "main.sf")), (tmp_path / "main.sf").as_uri(), [])
    imported = [d for d in shown if d.code == "SF201"]
    assert imported and imported[0].range.start.line == 0
    related = imported[0].related_information
    assert related and related[0].location.uri == (tmp_path / "lib.sf").as_uri()
    assert related[0].location.range.start.line == 1
