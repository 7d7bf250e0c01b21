"""`sfrun lsp`: registered on the CLI, and a clear message (exit 2) when the lsp extra is missing."""

from __future__ import annotations

import sys

import pytest

from sfdsl.cli import build_parser, main


def test_lsp_is_a_command_with_import_path() -> None:
    args = build_parser().parse_args(["lsp", "--stdio", "--import-path", "/x"])
    assert args.import_path == ["/x"] and args.stdio


def test_missing_pygls_is_named(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "sfdsl.lsp.server", None)
    assert main(["lsp"]) == 2
    assert "pip install 'sfdsl[lsp]'" in capsys.readouterr().err
