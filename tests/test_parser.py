"""The parser builds typed AST nodes with spans, and rewrites syntax errors into friendly diagnostics."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfdsl import ast
from sfdsl.errors import CompileError
from sfdsl.parser import decode_string, parse
from sfdsl.steps.extract import Extract
from sfdsl.steps.generate import Generate

SOURCE = '''
import "lib.sf" as lib
recipe sc(question: str, n: int = 8) -> (answer: str, score) {
  model gen = llama(model: "default", temperature: 0.7)
  prompt solve = """
      {{ question }}
      Think step by step."""
  prompt pt = chat { system: "x" user: "q {{question}}" assistant: "The answer is" }
  samples = generate solve (n: n, max_tokens: 256) using gen
  answers = extract number from samples after /The answer is/i
  v = vote answers by majority (stop: "unbeatable")
  return answer: v.answer, score: v.share
}
'''


def test_parse_builds_typed_nodes_with_spans() -> None:
    module = parse(SOURCE, file="sc.sf")
    assert module.imports[0].path == "lib.sf" and module.imports[0].alias == "lib"
    recipe = module.recipes[0]
    assert [p.name for p in recipe.params] == ["question", "n"]
    assert [f.name for f in recipe.returns] == ["answer", "score"]
    stmts = recipe.body.stmts
    assert isinstance(stmts[0], ast.ModelDecl) and stmts[0].backend == "llama"
    assert isinstance(stmts[1], ast.PromptDecl) and stmts[1].text == "{{ question }}\nThink step by step."
    assert [t.role for t in stmts[2].turns or []] == ["system", "user", "assistant"]
    gen = stmts[3]
    assert isinstance(gen, ast.Assign) and isinstance(gen.value, Generate)
    assert gen.value.using == "gen" and [a.name for a in gen.value.args] == ["n", "max_tokens"]
    assert gen.span.line == 9 and gen.span.column == 3
    extract = stmts[4].value
    assert isinstance(extract, Extract) and extract.after is not None
    assert (extract.after.pattern, extract.after.flags) == ("The answer is", "i")


def test_operator_precedence() -> None:
    module = parse("recipe r() { x = 1 + 2 * 3 < 10 and not false  return x }")
    value = module.recipes[0].body.stmts[0].value
    assert isinstance(value, ast.BinOp) and value.op == "and"
    assert isinstance(value.left, ast.BinOp) and value.left.op == "<"
    assert value.left.left.op == "+" and value.left.left.right.op == "*"


def test_string_escapes_and_dedent() -> None:
    assert decode_string(r'"a\"b\nc"') == 'a"b\nc'
    assert decode_string('"""\n    x\n      y"""') == "x\n  y"


@pytest.mark.parametrize(
    ("source", "code", "fragment"),
    [
        ('recipe a() {\n  x = "open\n}', "SF102", "unclosed string"),
        ("recipe a() {\n  x = 1\n", "SF104", "never closed"),
        ("recipe a() {\n  x 1\n}", "SF106", "missing '='"),
        ("recipe a() {\n  x = genrate p\n}", "SF107", "did you mean 'generate'"),
        ("recipi a() {}", "SF107", "did you mean 'recipe'"),
        ("recipe a() {\n  yield = 1\n}", "SF108", "reserved word"),
        ("recipe a() {\n  x = 1 $ 2\n}", "SF101", "unexpected character"),
        ("recipe a() {\n  return answer: extract number from x\n}", "SF109", "cannot be a return field"),
    ],
)
def test_friendly_syntax_errors(source: str, code: str, fragment: str) -> None:
    with pytest.raises(CompileError) as info:
        parse(source, file="t.sf")
    [diag] = info.value.diagnostics
    assert diag.code == code
    assert fragment in diag.message
    rendered = info.value.render()
    assert rendered.startswith(f"t.sf:{diag.span.line}:{diag.span.column}: error[{code}]")
    assert "^" in rendered


def test_grammar_loads_once() -> None:
    from sfdsl.grammar.loader import parser

    assert parser() is parser()


def test_grammar_ships_in_package() -> None:
    from sfdsl.grammar.loader import grammar_text

    assert "recipe" in grammar_text()
    assert Path(__file__).parent.parent.joinpath("grammar", "sf.lark").is_file()


def test_recipe_doc_is_the_comment_above_it_else_the_file_header() -> None:
    module = parse('''# File header: two recipes.
#   Indented detail.

# The first recipe.
recipe first(q: str) -> answer {
  return q
}

recipe second(q: str) -> answer {
  # a comment inside the body is not a doc
  return q
}
''')
    first, second = module.recipes
    assert first.doc == "The first recipe."
    assert second.doc == "File header: two recipes.\n  Indented detail."


def test_input_doc_comments_at_the_end_of_the_line_or_above() -> None:
    [recipe] = parse('''recipe r(
  #: the question
  #: to answer
  question: str,
  n: int = 3,  #: how many samples
  label: str = "a #: b",
  plain: int = 1,  # an ordinary comment
) -> answer {
  return question
}
''').recipes
    assert [(p.name, p.doc) for p in recipe.params] == [
        ("question", "the question to answer"), ("n", "how many samples"), ("label", ""), ("plain", "")]


def test_recipe_without_any_comment_has_an_empty_doc() -> None:
    [recipe] = parse("recipe r(q: str) -> answer {\n  return q\n}\n").recipes
    assert recipe.doc == ""
