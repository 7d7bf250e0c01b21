"""Random and mutated text fed to the compiler yields only our own errors, never a crash."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfdsl.compiler import compile_text
from sfdsl.errors import CompileError

CORPUS = [p.read_text() for p in sorted((Path(__file__).parent / "fixtures" / "ok").glob("*.sf"))]
TOKENS = ["recipe", "r", "(", ")", "{", "}", "=", "generate", "p", "prompt", '"x {{ q }}"', "return", "vote",
          "by", "majority", "refine", "as", "max", ":", "4", ",", "/re/", "if", "else", "map", "in", "yield",
          "extract", "number", "from", "\n", " ", "[", "]", '"""', "#", "evaluate", "choice", "stop", "when"]


def compiles_or_reports(text: str) -> None:
    try:
        compile_text(text, file="fuzz.sf")
    except CompileError as exc:
        assert exc.diagnostics, "a CompileError must carry diagnostics"
        exc.render()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    compiles_or_reports(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup(tokens: list[str]) -> None:
    compiles_or_reports(" ".join(tokens))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), st.data())
def test_mutated_recipes(source: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.tuples(st.integers(0, len(source)), st.integers(0, 12),
                                        st.sampled_from(TOKENS + [""])), max_size=4))
    text = source
    for at, length, insert in cuts:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + length:]
    compiles_or_reports(text)
