"""Broken recipes are fixture files with their expected diagnostics; every error is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfdsl.compiler import compile_file, compile_text
from sfdsl.errors import CompileError

ERRORS = Path(__file__).parent / "fixtures" / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.sf"))


@pytest.mark.parametrize("name", CASES)
def test_broken_recipe_reports_expected_diagnostics(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ERRORS)
    with pytest.raises(CompileError) as info:
        compile_file(f"{name}.sf")
    got = sorted(d.headline() for d in info.value.diagnostics)
    expected = sorted((ERRORS / f"{name}.expected").read_text().splitlines())
    assert got == expected
    rendered = info.value.render()
    for diag in info.value.diagnostics:
        assert diag.headline() in rendered
    assert " | " in rendered and "^" in rendered


def test_all_errors_reported_together() -> None:
    with pytest.raises(CompileError) as info:
        compile_file(ERRORS / "unknown_modes.sf")
    codes = {d.code for d in info.value.diagnostics if d.is_error}
    assert {"SF207", "SF210", "SF206", "SF211", "SF212", "SF213", "SF214", "SF203"} <= codes


def test_warnings_do_not_fail_compilation() -> None:
    compiled = compile_text('recipe r(q: str) { prompt p = "{{ q }}"  _draft = generate p  extra = 1  return q }')
    assert [w.code for w in compiled.warnings] == ["SF901"]
    assert "extra" in compiled.warnings[0].message


def test_if_branches_define_names_only_when_both_do() -> None:
    source = """recipe r(x: int) {
      if x > 1 { a = 1  b = 2 } else { a = 3 }
      return answer: a + b
    }"""
    with pytest.raises(CompileError) as info:
        compile_text(source)
    [error] = [d for d in info.value.diagnostics if d.is_error]
    assert error.code == "SF201" and "'b'" in error.message


def test_input_default_type_checked() -> None:
    with pytest.raises(CompileError) as info:
        compile_text('recipe r(n: int = "three") { return n }')
    assert info.value.diagnostics[0].code == "SF310"


def test_cross_file_calls_and_unknown_alias(tmp_path: Path) -> None:
    (tmp_path / "lib.sf").write_text('recipe helper(q: str) { return q }')
    (tmp_path / "main.sf").write_text('import "lib.sf" as lib\nrecipe main(q: str) { r = call lib.helper(q: q)  '
                                      's = call lib.helpr(q: q)  return answer: r.answer }')
    with pytest.raises(CompileError) as info:
        compile_file(tmp_path / "main.sf")
    [error] = [d for d in info.value.diagnostics if d.is_error]
    assert error.code == "SF502" and "lib.helper" in error.message
