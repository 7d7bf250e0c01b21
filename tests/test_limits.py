"""Compiler limits: deep nesting is a located compile error, never a RecursionError, and checking stays fast."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.call_graph import MAX_CALL_DEPTH
from sfdsl.compiler import compile_text
from sfdsl.errors import CompileError
from sfdsl.grammar.loader import parser
from sfdsl.limits import MAX_DEPTH, transform
from sfdsl.parser import _Builder
from sfdsl.runtime.backends.scripted import ScriptedBackend

OK_FIXTURES = sorted((Path(__file__).parent / "fixtures" / "ok").glob("*.sf"))


def recipe(body: str, answer: str) -> str:
    return "recipe r(q: str) {\n" + body + f"\n  return answer: {answer}\n}}\n"


def long_sum(terms: int) -> str:
    return recipe("  x = " + "+".join(["1"] * terms), "x")


def nested_lists(depth: int) -> str:
    return recipe("  x = " + "[" * depth + "1" + "]" * depth, "len(x)")


def nested_dicts(depth: int) -> str:
    return recipe("  x = " + '{"a": ' * depth + "1" + "}" * depth, "len(x)")


def nested_ifs(depth: int) -> str:
    return recipe("  y = 1\n" + '  if q == "a" {\n' * depth + "  z = 1\n" + "  }\n" * depth, "y")


def nested_parens(depth: int) -> str:
    return recipe("  x = " + "(" * depth + "1" + ")" * depth, "x")


def else_if_chain(branches: int) -> str:
    chain = '  if q == "0" { y = 0 }' + "".join(f' else if q == "{i}" {{ y = {i} }}' for i in range(1, branches))
    return recipe(chain + " else { y = -1 }", "y")


def too_deep(source: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_text(source, file="deep.sf")
    [diag] = info.value.diagnostics
    assert diag.code == "SF113" and f"more than {MAX_DEPTH} levels" in diag.message
    assert diag.span.file == "deep.sf" and diag.hint
    assert "^" in info.value.render()
    return info.value


def test_500_term_sum_is_a_located_limit_error() -> None:
    error = too_deep(long_sum(500))
    assert (error.diagnostics[0].span.line, error.diagnostics[0].span.column) == (2, 7)


def test_500_nested_lists_are_a_located_limit_error() -> None:
    span = too_deep(nested_lists(500)).diagnostics[0].span
    assert span.line == 2 and 7 < span.column < 7 + MAX_DEPTH


def test_300_nested_dicts_are_a_located_limit_error() -> None:
    assert too_deep(nested_dicts(300)).diagnostics[0].span.line == 2


def test_300_nested_ifs_are_a_located_limit_error() -> None:
    assert too_deep(nested_ifs(300)).diagnostics[0].span.line > 2


def test_1000_branch_else_if_chain_is_a_located_limit_error() -> None:
    assert too_deep(else_if_chain(1000)).diagnostics[0].span.line == 2


def test_deep_input_through_the_public_api_is_a_compile_error() -> None:
    for source in (long_sum(500), nested_lists(500), nested_dicts(300), nested_ifs(300), else_if_chain(1000)):
        with pytest.raises(CompileError):
            sfdsl.compile(source, file="deep.sf")


def test_5000_digit_number_is_a_located_error() -> None:
    with pytest.raises(CompileError) as info:
        compile_text(recipe("  x = " + "7" * 5000, "x"), file="n.sf")
    [diag] = info.value.diagnostics
    assert diag.code == "SF115" and (diag.span.line, diag.span.column) == (2, 7)


def test_500_nested_parens_compile() -> None:
    compile_text(nested_parens(500))


def test_deep_nesting_stops_the_parser_early() -> None:
    too_deep(recipe("  x = " + "[" * 90_000, "x"))


def at_stack_depth(frames: int, call: Callable[[], Any]) -> Any:
    """Run ``call`` with ``frames`` frames already on the stack, as a caller deep in its own code would."""
    return call() if frames <= 0 else at_stack_depth(frames - 1, call)


@pytest.mark.parametrize(
    ("source", "answer"),
    [
        (long_sum(MAX_DEPTH - 8), MAX_DEPTH - 8),
        (nested_lists(MAX_DEPTH - 8), 1),
        (nested_dicts(MAX_DEPTH - 8), 1),
        (recipe("  x = " + "-" * (MAX_DEPTH - 8) + "1", "x"), 1),
        (recipe("  x = " + " and ".join(["true"] * (MAX_DEPTH - 8)), "x"), True),
        (nested_ifs(MAX_DEPTH // 3 - 4), 1),
        (else_if_chain(MAX_DEPTH // 2 - 4), MAX_DEPTH // 2 - 5),
    ],
    ids=["sum", "lists", "dicts", "negations", "and-chain", "ifs", "else-if"],
)
def test_code_just_under_the_limit_compiles_and_runs_with_stack_to_spare(source: str, answer: Any) -> None:
    q = str(answer) if "else if" in source else "a"

    def run() -> Any:
        return sfdsl.compile(source, file="deep.sf").recipe().run(q=q, backend=ScriptedBackend([])).answer

    assert at_stack_depth(300, run) == answer


@pytest.mark.parametrize("path", OK_FIXTURES, ids=lambda p: p.stem)
def test_iterative_transform_builds_the_same_ast_as_lark(path: Path) -> None:
    tree = parser().parse(path.read_text())
    assert transform(_Builder(path.name), tree) == _Builder(path.name).transform(tree)


def call_chain(length: int, inner: str = "[1]") -> str:
    calls = "".join(f"recipe r{i}(q: str) -> answer {{\n  a = call r{i + 1}(q: q)\n  return answer: a.answer\n}}\n"
                    for i in range(length - 1))
    return calls + f"recipe r{length - 1}(q: str) -> answer {{\n  x = {inner}\n  return answer: len(x)\n}}\n"


DEEP_INPUTS = {
    "sum": long_sum(500), "lists": nested_lists(500), "dicts": nested_dicts(300), "ifs": nested_ifs(300),
    "else_if": else_if_chain(1000), "parens": nested_parens(500), "brackets": recipe("  x = " + "[" * 50_000, "x"),
    "calls": call_chain(500),
}


@pytest.mark.parametrize("name", sorted(DEEP_INPUTS))
def test_sfrun_check_on_deep_input_never_prints_a_traceback(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.sf"
    path.write_text(DEEP_INPUTS[name])
    done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "check", str(path)], capture_output=True,
                          text=True, timeout=120)
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "RecursionError" not in output
    if name == "parens":
        assert done.returncode == 0, output
    else:
        code = "SF116" if name == "calls" else "SF113"
        assert done.returncode == 1 and f"{path}:" in output and f"error[{code}]" in output, output


@pytest.mark.parametrize("value", ['["ab"] * 50000000', '"%050000000d" % 1', "len(q * 50000000)"])
def test_repetition_bomb_at_check_time_builds_nothing(value: str) -> None:
    source = 'recipe r(q: str = "ab") {\n  prompt p = "{{ q }}"\n  s = generate p (n: ' + value + ")\n  return s\n}\n"
    tracemalloc.start()
    try:
        with pytest.raises(CompileError) as info:
            compile_text(source, file="bomb.sf")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    assert {d.code for d in info.value.diagnostics} & {"SF301", "SF413"}


def call_fan_out(levels: int, width: int) -> str:
    text = ""
    for i in range(levels - 1):
        calls = "".join(f"  a{j} = call r{i + 1}(q: q)\n" for j in range(width))
        total = " + ".join(f"a{j}.answer" for j in range(width))
        text += f"recipe r{i}(q: str) -> answer {{\n{calls}  return answer: {total}\n}}\n"
    return text + f"recipe r{levels - 1}(q: str) -> answer {{\n  return answer: q\n}}\n"


def test_500_recipe_call_chain_is_a_located_limit_error() -> None:
    with pytest.raises(CompileError) as info:
        compile_text(call_chain(500), file="calls.sf")
    [diag] = info.value.diagnostics
    assert diag.code == "SF116" and "more than 32 recipes" in diag.message
    assert diag.span.file == "calls.sf" and diag.span.column == 7


def test_call_fan_out_of_a_million_recipe_bodies_is_a_limit_error() -> None:
    with pytest.raises(CompileError) as info:
        compile_text(call_fan_out(21, 2), file="fan.sf")
    assert [d.code for d in info.value.diagnostics] == ["SF116"]
    assert "too many recipes" in info.value.diagnostics[0].message


def test_call_chain_at_the_limit_runs_with_deep_code_and_stack_to_spare() -> None:
    depth = MAX_DEPTH - 10
    source = call_chain(MAX_CALL_DEPTH, "[" * depth + "1" + "]" * depth)

    def run() -> Any:
        return sfdsl.compile(source, file="calls.sf").recipe("r0").run(q="a", backend=ScriptedBackend([])).answer

    assert at_stack_depth(300, run) == 1
