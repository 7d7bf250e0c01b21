"""docs/extending.md stays true: its example step kind is complete, and its example backend runs through `--backend`."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

import sfdsl
from sfdsl import declarations, registry
from sfdsl.cli import main
from sfdsl.declarations import BackendDecl
from sfdsl.grammar.loader import grammar_text
from sfdsl.step_kind import StepKind

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_example_step_kind_is_complete_and_fits_the_grammar() -> None:
    module = types.ModuleType("sfdsl.steps.dedupe")
    sys.modules[module.__name__] = module
    try:
        exec(compile(_blocks("python")[0], "extending.md", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    kind = module.KIND
    assert isinstance(kind, StepKind) and kind.name == "dedupe"
    rule = next(line for line in _blocks("lark")[0].splitlines() if line.startswith("dedupe:"))
    grammar = grammar_text().replace("    | expr\n", "    | dedupe\n    | expr\n", 1) + rule + "\n"
    kinds = registry.collect([*registry.step_modules(), module], grammar)
    assert list(kinds)[-1] == "dedupe" and set(registry.KINDS) < set(kinds)


def test_the_example_runner_has_the_runtime_signature() -> None:
    runner = _blocks("python")[1]
    assert runner.startswith("async def run_dedupe(ex: Executor, state: RecipeState, node: Dedupe, frame: Frame,")
    assert "bodies: dict[str, Plan]" in runner


RECIPE = """
recipe echo_it(question: str) -> (answer) {
  prompt p = "Q: {{ question }}"
  a = generate p (max_tokens: 8)
  return answer: a
}
"""


@pytest.fixture
def echo_declared(monkeypatch: pytest.MonkeyPatch) -> BackendDecl:
    """The doc's `echo` module installed as sfdsl.runtime.backends.echo and its one declaration added."""
    module = types.ModuleType("sfdsl.runtime.backends.echo")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    source = next(block for block in _blocks("python") if "class EchoBackend(Backend)" in block)
    exec(compile(source, "extending.md", "exec"), module.__dict__)
    line = next(block for block in _blocks("python") if block.startswith('BackendDecl("echo"'))
    decl = eval(line, {"BackendDecl": BackendDecl})
    monkeypatch.setitem(declarations.BACKENDS, decl.name, decl)  # type: ignore[index]
    return decl  # type: ignore[no-any-return]


def test_a_declared_backend_runs_through_the_backend_option(
        echo_declared: BackendDecl, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "echo.sf"
    recipe.write_text(RECIPE)
    argv = ["run", str(recipe), "-i", "question=why?", "--json", "--no-cache"]
    assert main([*argv, "--backend", "echo"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "Q: why?"
    assert main([*argv, "--backend", "echo:>> "]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == ">> Q: why?"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "echo[:PREFIX]" in " ".join(capsys.readouterr().out.split())


def test_a_declared_backend_serves_model_declarations_and_spec_strings(echo_declared: BackendDecl) -> None:
    program = sfdsl.compile(RECIPE.replace('  prompt p', '  model m = echo(prefix: "-> ")\n  prompt p'))
    assert program.recipe().run(question="hi").answer == "-> Q: hi"
    assert sfdsl.compile(RECIPE).recipe().run(question="hi", backend="echo:# ").answer == "# Q: hi"
    with sfdsl.Runtime(backend="echo") as runtime:
        assert sfdsl.compile(RECIPE).recipe().run(question="yo", runtime=runtime).answer == "Q: yo"
    program.close()
