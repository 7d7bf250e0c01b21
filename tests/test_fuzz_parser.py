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


# ---------------------------------------------------------------- deep structures

#: Ways to wrap an expression one level deeper.
WRAPPERS = ["[{}]", '{{"k": {}}}', "({})", "-{}", "not {}", "f({})", "{}[0]", "{}.x", "[1, {}]", "{} + 1",
            "1 * {}", "({} == 1)", "{} and true"]
#: Ways to wrap statements in one more block.
BLOCKS = ['if q == "a" {{ {} }}', 'if q == "a" {{ y = 1 }} else {{ {} }}',
          'm = map v in [1] {{ {} yield 1 }}', "r = refine 1 as c (max: 1) {{ {} next c }}",
          "t = vote 1 times by majority {{ {} yield 1 }}"]
OPERATORS = ["+", "-", "*", "/", "%", "and", "or", "==", "<"]


def nested(seed: str, templates: list[str], max_size: int) -> st.SearchStrategy[str]:
    """``seed`` wrapped in up to ``max_size`` drawn templates, innermost first, built without recursion."""
    def build(chosen: list[str]) -> str:
        text = seed
        for template in chosen:
            text = template.format(text)
        return text

    return st.lists(st.sampled_from(templates), max_size=max_size).map(build)


def deep_expression() -> st.SearchStrategy[str]:
    """An expression nested up to hundreds of levels."""
    return nested("1", WRAPPERS, 400)


def long_chain() -> st.SearchStrategy[str]:
    """A flat run of operands and operators: one level per operator once folded."""
    return st.lists(st.sampled_from(OPERATORS), max_size=600).map(
        lambda ops: "1" + "".join(f" {op} 1" for op in ops))


def deep_blocks() -> st.SearchStrategy[str]:
    """Statements nested in blocks (if, else, map, refine, vote times) up to a hundred deep."""
    return nested("z = 1", BLOCKS, 120)


def else_if_chain() -> st.SearchStrategy[str]:
    return st.integers(1, 1200).map(
        lambda n: 'if q == "0" { y = 0 }' + "".join(f' else if q == "{i}" {{ y = {i} }}' for i in range(1, n)))


def compiles_or_reports_deep(statements: str) -> None:
    """Deep input compiles, or fails with located diagnostics; never a RecursionError or a crash."""
    text = "recipe r(q: str) {\n  " + statements + "\n  return answer: q\n}\n"
    try:
        compile_text(text, file="deep.sf")
    except CompileError as exc:
        assert exc.diagnostics and all(d.span.file == "deep.sf" for d in exc.diagnostics)
        exc.render()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deep_expression())
def test_deep_expressions(expression: str) -> None:
    compiles_or_reports_deep(f"x = {expression}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(long_chain())
def test_long_operator_chains(chain: str) -> None:
    compiles_or_reports_deep(f"x = {chain}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deep_blocks())
def test_deep_blocks(statements: str) -> None:
    compiles_or_reports_deep(statements)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(else_if_chain())
def test_else_if_chains(chain: str) -> None:
    compiles_or_reports_deep(chain + " else { y = 1 }")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deep_expression(), st.integers(0, 399), st.sampled_from(TOKENS + [""]))
def test_broken_deep_expressions(expression: str, at: int, insert: str) -> None:
    at = min(at, len(expression))
    compiles_or_reports_deep(f"x = {expression[:at]}{insert}{expression[at + 1:]}")
