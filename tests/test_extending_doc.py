"""docs/extending.md stays true: its example step module declares a complete kind the registry accepts."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from sfdsl import registry
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
