"""The VS Code extension's TextMate grammar: generated from the grammar's keywords, committed current, and
tested with vscode-tmgrammar-test over the shipped recipes when node is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sfdsl.integrations import textmate
from sfdsl.integrations.pygments_lexer import KEYWORDS

REPO = Path(__file__).resolve().parent.parent
EXTENSION = REPO / "editors" / "vscode"
COMMITTED = EXTENSION / "syntaxes" / "sf.tmLanguage.json"
FIX = "python -m sfdsl.integrations.textmate editors/vscode/syntaxes/sf.tmLanguage.json"


def test_committed_grammar_is_the_generators_output() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == textmate.render(), f"the grammar is stale; run: {FIX}"


def test_every_grammar_keyword_is_highlighted() -> None:
    text = json.dumps(textmate.grammar())
    for word in KEYWORDS:
        assert re.search(rf"[(|]{word}[)|]", text), word


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "sf.tmLanguage.json"
    stale.write_text("{}")
    assert textmate.main([str(stale), "--check"]) == 1
    assert textmate.main([str(stale)]) == 0
    assert textmate.main([str(stale), "--check"]) == 0


def test_grammar_passes_vscode_tmgrammar_test_over_the_shipped_recipes() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (EXTENSION / "node_modules" / "vscode-tmgrammar-test").is_dir():
        pytest.skip("run `npm ci` in editors/vscode first")
    run = subprocess.run([node, "tests/grammar-test.js"], cwd=EXTENSION, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "recipe file(s)" in run.stdout
