"""The step-kind registry: every kind complete, one module each, checked against the grammar at import."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from pydantic import Field

from sfdsl import ast, registry
from sfdsl.diagnostics import Span
from sfdsl.grammar.loader import KEYWORDS, grammar_text
from sfdsl.grammar_words import keywords
from sfdsl.step_kind import REQUIRED_PIECES, ParamSpec, StepKind, StepKindError
from sfdsl.steps.vote import Vote
from sfdsl.types import INT

ROOT = Path(__file__).resolve().parent.parent


def test_every_step_module_declares_a_complete_kind() -> None:
    names = {m.__name__.rsplit(".", 1)[1] for m in registry.step_modules()}
    assert len(names) == len(registry.KINDS)
    for kind in registry.KINDS.values():
        assert all(getattr(kind, piece) is not None for piece in REQUIRED_PIECES)
        assert callable(registry.runner(kind))
        assert inspect.iscoroutinefunction(registry.runner(kind))
        assert kind.doc and kind.syntax


def test_every_grammar_step_rule_has_a_kind_and_every_step_word_is_a_keyword() -> None:
    _, listed = registry._grammar_rules(grammar_text())
    assert [k.rule for k in registry.KINDS.values()] == listed
    assert {"cluster", "vote", "refine", "search"} <= KEYWORDS
    assert "cluster" in keywords().steps  # the syntax errors' keyword tables follow the grammar too


def test_parser_builds_every_rule_of_every_kind() -> None:
    for kind in registry.KINDS.values():
        assert registry.BUILDERS[kind.rule] is kind.build
        for rule, callback in kind.rules.items():
            assert registry.BUILDERS[rule] is callback


def _kind(**pieces: object) -> StepKind:
    full: dict[str, object] = {
        "node": Vote, "rule": "vote", "build": lambda b, c, m: None, "modes": {"": {}},
        "check": lambda ck, n, s: None, "bound": lambda cm, n, e: None, "label": lambda n: "",
        "runtime": "sfdsl.runtime.step_runs:run_vote",
    }
    full.update(pieces)
    return StepKind(name="vote", **full)  # type: ignore[arg-type]


@pytest.mark.parametrize("piece", REQUIRED_PIECES)
def test_a_missing_piece_is_an_error_naming_the_kind(piece: str) -> None:
    with pytest.raises(StepKindError, match=rf"step kind 'vote' is incomplete: it declares no {piece}"):
        _kind(**{piece: None})


def test_the_node_must_carry_the_kind_name() -> None:
    class Other(ast.StepNode):
        kind: str = "other"
        args: list[ast.Arg] = Field(default_factory=list)

    with pytest.raises(StepKindError, match="step kind 'vote': its node Other must have"):
        _kind(node=Other)


def test_params_is_short_for_a_single_unnamed_mode() -> None:
    spec = {"k": ParamSpec(INT, "a count", default=1)}
    kind = _kind(modes=None, params=spec)
    assert kind.modes == {"": spec} and kind.mode_field == ""
    assert kind.spec_of(Vote(span=Span(file="x"), source=ast.Name(id="x", span=Span(file="x")), mode="anything"))
    with pytest.raises(StepKindError, match="give modes= or params=, not both"):
        _kind(params=spec)


def test_the_runtime_must_be_a_runtime_reference() -> None:
    with pytest.raises(StepKindError, match=r"runtime must be .sfdsl\.runtime"):
        _kind(runtime="os:system")
    with pytest.raises(StepKindError, match="does not exist"):
        registry.runner(_kind(runtime="sfdsl.runtime.step_runs:nope"))


def _module(name: str, kind: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.KIND = kind  # type: ignore[attr-defined]
    return module


def test_collect_rejects_a_module_without_kind_a_missing_rule_and_an_unclaimed_rule() -> None:
    grammar = '_rhs: vote\n    | expr\nvote: "vote" expr\nother: "x"\n'
    with pytest.raises(StepKindError, match=r"sfdsl\.steps\.empty declares no"):
        registry.collect([_module("sfdsl.steps.empty", None)], grammar)
    assert list(registry.collect([_module("v", _kind())], grammar)) == ["vote"]
    with pytest.raises(StepKindError, match=r"step kind .vote.: grammar/sf\.lark has no rule .vote."):
        registry.collect([_module("v", _kind())], '_rhs: expr\nx: "y"\n')
    with pytest.raises(StepKindError, match="grammar rule 'cluster' is a step but no module"):
        registry.collect([_module("v", _kind())], grammar.replace("| expr", "| cluster\n    | expr"))
    with pytest.raises(StepKindError, match="declared twice"):
        registry.collect([_module("a", _kind()), _module("b", _kind())], grammar)


def test_no_step_is_dispatched_through_an_f_string_getattr() -> None:
    pattern = re.compile(r"getattr\([^)]*f[\"']")
    for path in [*ROOT.joinpath("sfdsl").rglob("*.py"), *ROOT.joinpath("runtime").rglob("*.py")]:
        assert not pattern.search(path.read_text(encoding="utf-8")), path


def test_importing_the_registry_loads_no_runtime_module() -> None:
    code = "import sys, sfdsl.registry; print(any(m.startswith('sfdsl.runtime') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
