"""docs/language.md's step parameter tables are generated from the step kinds' specs and kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfdsl.registry import KINDS
from sfdsl.step_docs import BEGIN, END, main, parameter_tables, update

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"


def test_docs_language_tables_are_current() -> None:
    assert main([str(DOC), "--check"]) == 0, "run: python -m sfdsl.step_docs docs/language.md"


def test_tables_show_every_parameter_with_its_default() -> None:
    tables = parameter_tables()
    for kind in KINDS.values():
        assert f"### {kind.name}" in tables
        for spec in (kind.modes or {}).values():
            for name in spec:
                assert f"| `{name}` |" in tables
    assert "| `gamma` | `float` | `2.0` |" in tables
    assert "| `budget` | `int` | required |" in tables
    assert '`"last"`, `"best"`' in tables


def test_update_replaces_only_the_generated_section(tmp_path: Path) -> None:
    doc = tmp_path / "d.md"
    doc.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n", encoding="utf-8")
    assert main([str(doc), "--check"]) == 1
    assert main([str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{END}\noutro\n") and "stale" not in text
    assert update(text) == text
    with pytest.raises(ValueError, match="no generated section"):
        update("nothing here")
