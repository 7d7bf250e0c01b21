"""The canonical formatter: layout rules, comments and prompt text kept, idempotence, ASTs unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfdsl.errors import CompileError
from sfdsl.formatter import format_source, is_formatted
from sfdsl.grammar.loader import parser
from sfdsl.parser import parse

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*.sf"))
FIXTURES = sorted((REPO / "tests" / "fixtures").rglob("*.sf"))


def shape(node: Any) -> Any:
    """An AST dump without spans (and with the recipe docs' trailing spaces dropped)."""
    if isinstance(node, dict):
        return {k: shape(v) for k, v in node.items() if k not in ("span", "body_span")}
    if isinstance(node, list):
        return [shape(v) for v in node]
    if isinstance(node, str):
        return "\n".join(line.rstrip() for line in node.split("\n"))
    return node


def same_meaning(before: str, after: str) -> None:
    assert shape(parse(before).model_dump()) == shape(parse(after).model_dump())


def parses(text: str) -> bool:
    try:
        parse(text)
    except CompileError:
        return False
    return True


MESSY = '''
import "lib.sf"   as lib


# Doubles a number.
recipe  double ( x:int=3,names : list[ str ] ) -> ( answer , score:float ) {
    model m=llama(n_ctx:2048)   # the model
  prompt p="hi {{x}}"
  prompt q = """Keep   this
      exactly   as written   """


    y=generate p(n:3,temperature:0.7)using m
  z = [1,2 ,- 3][0]+len( y )* -2
  d = {"a":1, "b":[]}
  if not z>3 and y.text matches /x/i { return answer:y, score:1.0 } else {
  # inner
  return answer: y,
  score: 0.5
  }
}
recipe w() { return 1 }
'''

EXPECTED = '''import "lib.sf" as lib

# Doubles a number.
recipe double(x: int = 3, names: list[str]) -> (answer, score: float) {
  model m = llama (n_ctx: 2048)  # the model
  prompt p = "hi {{x}}"
  prompt q = """Keep   this
      exactly   as written   """

  y = generate p (n: 3, temperature: 0.7) using m
  z = [1, 2, -3][0] + len(y) * -2
  d = {"a": 1, "b": []}
  if not z > 3 and y.text matches /x/i { return answer: y, score: 1.0 } else {
    # inner
    return answer: y,
      score: 0.5
  }
}

recipe w() { return 1 }
'''


def test_messy_source_gets_the_canonical_layout() -> None:
    assert format_source(MESSY) == EXPECTED
    same_meaning(MESSY, EXPECTED)


def test_continuation_lines_inside_brackets_are_indented_once() -> None:
    text = "recipe r() {\n  x = generate p (n: 1,\n temperature: 0)\n  return x\n}\n"
    assert format_source(text).splitlines()[2] == "    temperature: 0)"


def test_trailing_comments_of_consecutive_lines_align_and_closers_are_not_continuations() -> None:
    text = "recipe r(\n  q: str, #: the question\n  max_tokens: int = 256,   #: at most\n) -> answer {\n  return q\n}\n"
    assert format_source(text) == ("recipe r(\n  q: str,                 #: the question\n"
                                   "  max_tokens: int = 256,  #: at most\n) -> answer {\n  return q\n}\n")


def test_blank_lines_collapse_and_vanish_at_block_edges() -> None:
    text = "recipe r() {\n\n\n  x = 1\n\n\n\n  return x\n\n}\n\n\n"
    assert format_source(text) == "recipe r() {\n  x = 1\n\n  return x\n}\n"


def test_comments_are_kept_in_place() -> None:
    text = "# head\nrecipe r() {   # opens\n  # own line\n  return 1 # trailing   \n}\n# tail"
    out = format_source(text)
    assert out == "# head\nrecipe r() {  # opens\n  # own line\n  return 1  # trailing\n}\n\n# tail\n"


def test_syntax_errors_are_refused_with_diagnostics() -> None:
    with pytest.raises(CompileError) as caught:
        format_source("recipe r( {", file="bad.sf")
    assert caught.value.diagnostics[0].span.file == "bad.sf"


def test_empty_file_stays_empty() -> None:
    assert format_source("\n\n") == ""


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_are_formatted(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert is_formatted(text, file=str(path)), (
        f"{path.relative_to(REPO)} is not in the canonical layout; fix it with: sfrun fmt {path.relative_to(REPO)}")


@pytest.mark.parametrize("path", [p for p in RECIPES + FIXTURES if parses(p.read_text(encoding="utf-8"))],
                         ids=lambda p: p.name)
def test_idempotent_and_meaning_kept_on_shipped_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    once = format_source(text)
    assert format_source(once) == once
    same_meaning(text, once)


# ---------------------------------------------------------------- generated programs

SEPARATORS = [" ", "  ", "\t", "\n", "\n\n\n", "  # note\n", "\n    ", " \n "]
ATOMS = ["x", "1", "2.5", '"s"', "true", "none", "xs", "/a+b/i"]


def expressions() -> st.SearchStrategy[str]:
    """Random expressions over every operator, literal and postfix form of the grammar."""
    def extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*", "/", "%", "and", "or"]), children).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(children, st.sampled_from(["==", "!=", "<", ">=", "in", "matches"]), children).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"),
            children.map(lambda c: f"-{c}"), children.map(lambda c: f"(not {c})"),
            st.lists(children, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.lists(children, max_size=2).map(lambda xs: "{" + ", ".join(f'"k{i}": {x}' for i, x in
                                                                         enumerate(xs)) + "}"),
            st.lists(children, min_size=1, max_size=2).map(lambda xs: "max(" + ", ".join(xs) + ")"),
            children.map(lambda c: f"({c})[0]"), children.map(lambda c: f"({c}).text"),
        )
    return st.recursive(st.sampled_from(ATOMS), extend, max_leaves=8)


def program(exprs: list[str]) -> str:
    body = "\n".join(f"  v{i} = {e}" for i, e in enumerate(exprs))
    return f'''# generated
recipe g(x: str, xs: list[str] = ["a"]) -> (answer, score: float) {{
  prompt p = chat {{
    user: """{{{{ x }}}}   kept"""
  }}
  s = generate p (n: 2, temperature: 0.5, stop: ["\\n"])
{body}
  c = refine s as cur (max: 2) {{
    next generate p (temperature: 0)
  }}
  if x == "a" {{ return answer: c, score: 1.0 }} else {{ abstain reason: "no" }}
}}
'''


def relayout(text: str, seps: list[str]) -> str:
    """The same tokens with the drawn whitespace and comments between them (a valid program again)."""
    tokens = list(parser().parse_interactive(text).iter_parse())
    out = []
    for i, token in enumerate(tokens):
        out.append(str(token))
        out.append(seps[i % len(seps)] if seps else " ")
    return "".join(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(expressions(), min_size=1, max_size=4), st.lists(st.sampled_from(SEPARATORS), max_size=30))
def test_generated_programs_keep_meaning_and_are_idempotent(exprs: list[str], seps: list[str]) -> None:
    text = relayout(program(exprs), seps)
    once = format_source(text)
    assert format_source(once) == once
    same_meaning(text, once)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RECIPES), st.lists(st.sampled_from(SEPARATORS), min_size=1, max_size=30))
def test_relaid_shipped_recipes_format_back(path: Path, seps: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    messy = relayout(text, seps)
    once = format_source(messy)
    assert format_source(once) == once
    same_meaning(messy, once)
