"""Source limits (size, line length, tokens, literal sizes) and line endings: located errors, never slow crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfdsl import source_limits
from sfdsl.cli import main
from sfdsl.compiler import compile_file, compile_text
from sfdsl.diagnostics import Diagnostic, Span, render
from sfdsl.errors import CompileError
from sfdsl.program import load_program


def recipe(body: str, answer: str = "q") -> str:
    return "recipe r(q: str) {\n" + body + f"\n  return answer: {answer}\n}}\n"


def refused(text: str) -> Diagnostic:
    with pytest.raises(CompileError) as info:
        compile_text(text, file="big.sf")
    return info.value.diagnostics[0]


# ---------------------------------------------------------------- the reproductions


def test_5mb_choices_list_is_refused_as_too_large(tmp_path: Path) -> None:
    options = ", ".join(f'"option{i:06d}"' for i in range(400_000))
    path = tmp_path / "choices.sf"
    path.write_text(recipe(f'  prompt p = "x"\n  c = generate choice p (options: [{options}])', "c"))
    with pytest.raises(CompileError) as info:
        compile_file(path)
    (diag,) = info.value.diagnostics
    assert diag.code == "SF117" and diag.span.file == str(path)
    assert diag.span.line == 3 and diag.span.column > 1  # where the limit is crossed


def test_list_of_1m_ints_is_refused_as_too_large() -> None:
    diag = refused(recipe("  x = [" + ",".join("1" * 1_000_000) + "]", "x"))
    assert diag.code == "SF117" and diag.span.line == 2


def test_1m_closing_braces_on_one_line_is_refused_as_a_long_line() -> None:
    diag = refused(recipe("}" * 1_000_000))
    assert diag.code == "SF118" and (diag.span.line, diag.span.column) == (2, source_limits.MAX_LINE_CHARS + 1)


def test_cr_only_file_compiles_its_recipes_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "cr.sf"
    path.write_bytes(b"# a comment\rrecipe r(q: str) {\r  return answer: qq\r}\r")
    with pytest.raises(CompileError) as info:
        compile_file(path)
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.span.line, diag.span.column) == ("SF201", 3, 18)
    assert "3 |   return answer: qq" in info.value.render()


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_all_compile_the_same_recipe(newline: str, tmp_path: Path) -> None:
    text = "# says q back\nrecipe r(q: str) {\n  # a comment\n  return answer: q\n}\n".replace("\n", newline)
    path = tmp_path / "r.sf"
    path.write_bytes(text.encode())
    compiled = compile_file(path)
    (only,) = compiled.recipes()
    assert only.name == "r" and only.span.line == 2 and only.doc == "says q back"


def test_mixed_line_endings_count_lines_like_an_editor() -> None:
    diag = refused("recipe r(q: str) {\r\n  x = 1\r  return answer: y\n}\n")
    assert (diag.code, diag.span.line) == ("SF201", 3)


# ---------------------------------------------------------------- the stated limits


def test_file_over_the_byte_limit_is_refused_without_reading_it_all(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.sf"
    path.write_bytes(b"#" * (source_limits.MAX_SOURCE_BYTES * 3))
    reads: list[int] = []
    original = Path.open

    def counting_open(self: Path, *args: object, **kwargs: object) -> object:
        handle = original(self, *args, **kwargs)  # type: ignore[arg-type]
        if self == path:
            real_read = handle.read
            handle_read = lambda n=-1: reads.append(n) or real_read(n)  # noqa: E731
            return _Wrapped(handle, handle_read)
        return handle

    monkeypatch.setattr(Path, "open", counting_open)
    with pytest.raises(CompileError) as info:
        load_program(path)
    assert info.value.diagnostics[0].code == "SF117"
    assert reads == [source_limits.MAX_SOURCE_BYTES + 1]


class _Wrapped:
    def __init__(self, handle: object, read: object) -> None:
        self._handle, self.read = handle, read

    def __enter__(self) -> _Wrapped:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()  # type: ignore[attr-defined]


def test_too_many_tokens_is_a_located_error() -> None:
    lines = "\n".join(f"  x{i} = [{','.join('1' * 1000)}]" for i in range(30))
    diag = refused(recipe(lines))
    assert diag.code == "SF120" and diag.span.line > 2


def test_many_stray_braces_stop_at_the_token_limit() -> None:
    with pytest.raises(CompileError) as info:
        compile_text("}\n" * (source_limits.MAX_TOKENS + 10))
    codes = [d.code for d in info.value.diagnostics]
    assert codes[0] == "SF114" and codes[-1] == "SF120"


@pytest.mark.parametrize(("body", "what"), [
    ("  x = [" + ",".join("1" * (source_limits.MAX_LITERAL_ITEMS + 1)) + "]", "list"),
    ("  x = {" + ",\n".join(f'"k{i}": 1' for i in range(source_limits.MAX_LITERAL_ITEMS + 1)) + "}", "dict"),
    ('  x = """' + "ab\n" * (source_limits.MAX_STRING_CHARS // 3 + 1) + '"""', "string"),
    ('  prompt p = """' + "a\n" * (source_limits.MAX_STRING_CHARS // 2 + 1) + '"""\n  x = generate p', "string"),
], ids=["list", "dict", "string", "prompt"])
def test_literals_over_their_limit_are_located_errors(body: str, what: str) -> None:
    diag = refused(recipe(body, "q"))
    assert diag.code == "SF119" and f"{what} literal too large" in diag.message and diag.span.line == 2


def test_literals_at_their_limit_compile() -> None:
    compile_text(recipe("  x = [" + ",".join("1" * source_limits.MAX_LITERAL_ITEMS) + "]\n  _y = x", "q"))


def test_a_long_line_is_shown_as_a_window_around_the_caret() -> None:
    line = "x" * 5000 + "HERE" + "y" * 5000
    diag = Diagnostic(code="SF999", message="m", span=Span(file="f", line=1, column=5001, end_line=1,
                                                              end_column=5005))
    shown = render(diag, line).splitlines()
    assert len(shown[1]) < 200 and "HERE" in shown[1]
    assert shown[2].index("^") == shown[1].index("HERE") and shown[2].count("^") == 4


def test_sfrun_check_of_a_huge_file_is_one_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.sf"
    path.write_text(recipe("  x = [" + ",".join("1" * 1_000_000) + "]", "x"))
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2:" in out and "error[SF117]" in out and len(out) < 2000


def test_a_byte_order_mark_is_not_a_stray_character(tmp_path: Path) -> None:
    path = tmp_path / "bom.sf"
    path.write_bytes("\ufeffrecipe r(q: str) {\r\n  return answer: q\r\n}\r\n".encode())
    (only,) = compile_file(path).recipes()
    assert (only.name, only.span.line, only.span.column) == ("r", 1, 8)
