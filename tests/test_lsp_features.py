"""The language server's features without a client: lexicon roles, completion, hover, navigation, symbols and
quick fixes, and a property test that every feature answers on any edit of any shipped recipe."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.formatter import format_source
from sfdsl.lsp.actions import fixes
from sfdsl.lsp.analysis import analyze
from sfdsl.lsp.completion import complete
from sfdsl.lsp.hover import hover
from sfdsl.lsp.lexicon import Lexicon, scan
from sfdsl.lsp.navigation import definition, references
from sfdsl.lsp.symbols import outline

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*.sf"))
FILE = str(REPO / "tests" / "fixtures" / "lsp" / "main.sf")

TEXT = '''import "lib.sf"

recipe r(question: str) -> (answer, score) {
  model m = llama (n_ctx: 512)
  prompt ask = chat {
    user: """Q: {{ question }} and {{ }}"""
  }
  s = generate ask (n: 2) using m
  c = cluster s by exact
  best = evaluate choice ask (options: ["a", "b"])
  h = call helper(question: question)
  return answer: c.largest, score: c.entropy
}
'''


def items(text: str, needle: str, shift: int = 0) -> set[str]:
    analysis = analyze(text, FILE)
    return {item.label for item in complete(analysis, Lexicon(text), text.index(needle) + shift)}


def test_scanner_tells_regexes_from_division() -> None:
    kinds = [t.kind for t in scan("x = a / b / c\ny = extract regex /a+/i from x")]
    assert kinds.count("regex") == 1 and kinds.count("op") >= 4


def test_roles_of_names() -> None:
    lex = Lexicon(TEXT)
    roles = {(lex.tokens[i].text, role.role) for i, role in lex.names()}
    assert {("ask", "prompt"), ("m", "model"), ("helper", "recipe"), ("ask", "decl_prompt"), ("n", "arg"),
            ("s", "decl_name"), ("exact", "mode"), ("largest", "field"), ("answer", "label")} <= roles


def test_completion_contexts() -> None:
    assert items(TEXT, "generate ask", len("generate ")) >= {"ask"}
    assert items(TEXT, "using m", len("using ")) == {"m"}
    assert items(TEXT, "by exact", len("by ")) == {"exact", "similarity", "llm"}
    assert items(TEXT, "choice ask", 0) >= {"choice", "rating", "likelihood", "critique"}
    assert "helper" in items(TEXT, "helper(", 0)
    assert {"largest", "entropy", "share"} <= items(TEXT, "c.largest", 2)
    assert "question" in items(TEXT, "{{ }}", 3)
    assert {"options", "positive"} <= items(TEXT, "(options", 1)


def test_hover_on_an_import_shows_the_resolved_path() -> None:
    found = hover(analyze(TEXT, FILE), Lexicon(TEXT), TEXT.index('"lib.sf"') + 2)
    assert found is not None and str(REPO / "tests" / "fixtures" / "lsp" / "lib.sf") in found.markdown


def test_hover_on_an_imported_file_outside_the_roots_says_so(tmp_path: Path) -> None:
    text = 'import "../outside.sf"\nrecipe r() { return 1 }\n'
    (tmp_path / "outside.sf").write_text("recipe o() { return 1 }\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    found = hover(analyze(text, str(inner / "m.sf")), Lexicon(text), 9)
    assert found is not None and "not found inside the allowed directories" in found.markdown
    allowed = hover(analyze(text, str(inner / "m.sf"), [str(tmp_path)]), Lexicon(text), 9, [str(tmp_path)])
    assert allowed is not None and "outside.sf`" in allowed.markdown


def test_definition_and_references_of_a_model() -> None:
    analysis, lex = analyze(TEXT, FILE), Lexicon(TEXT)
    [loc] = definition(analysis, lex, TEXT.index("using m") + 6, [])
    assert (loc.line, loc.character) == (3, 8)
    refs = references(analysis, lex, TEXT.index("model m") + 6, include_declaration=False)
    assert [r.line for r in refs] == [7]


def test_outline_lists_recipe_prompts_models_steps() -> None:
    [recipe] = outline(analyze(TEXT, FILE).module)  # type: ignore[arg-type]
    assert [(c.name, c.kind) for c in recipe.children][:4] == [("m", "model"), ("ask", "prompt"), ("s", "step"),
                                                               ("c", "step")]


def test_quick_fix_for_a_missing_loop_bound() -> None:
    diagnostic = Diagnostic(code="SF410", message="unbounded loop: refine needs `max:` (rounds at most)",
                            span=Span(line=1, column=5, end_line=1, end_column=11))
    [fix] = fixes(diagnostic, "x = refine a as c { next c }")
    assert (fix.character, fix.new_text) == (18, "(max: 3) ")
    [fix] = fixes(diagnostic, "x = refine a as c (score: 1) { next c }")
    assert (fix.character, fix.new_text) == (19, "max: 3, ")


# ---------------------------------------------------------------- every feature answers, whatever the text

TOKENS = ["", "(", ")", "{", "}", ".", ",", ":", '"', '"""', "{{", "generate ", "v.", "call ", "# c", "\n", "="]


def answer_everything(text: str, offset: int) -> None:
    analysis, lex = analyze(text, FILE), Lexicon(text)
    complete(analysis, lex, offset)
    hover(analysis, lex, offset)
    definition(analysis, lex, offset, [])
    references(analysis, lex, offset, include_declaration=True)
    if analysis.module is not None:
        outline(analysis.module)
    if analysis.complete:
        format_source(text)
    for d in analysis.diagnostics:
        fixes(d, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(RECIPES), st.data())
def test_every_feature_answers_after_random_edits(path: Path, data: st.DataObject) -> None:
    text = path.read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 20))
        text = text[:at] + data.draw(st.sampled_from(TOKENS)) + text[at + cut:]
    answer_everything(text, data.draw(st.integers(0, len(text))))


def test_references_of_an_imported_recipe_include_its_declaration_there() -> None:
    text = 'import "lib.sf" as lib\nrecipe r(q: str) {\n  a = call lib.helper(question: q)\n  return a\n}\n'
    analysis, lex = analyze(text, FILE), Lexicon(text)
    refs = references(analysis, lex, text.index("helper") + 1, include_declaration=True)
    assert [(Path(r.file).name, r.line) for r in refs] == [("main.sf", 2), ("lib.sf", 1)]


def test_hover_on_a_mode_and_on_a_parameter() -> None:
    analysis, lex = analyze(TEXT, FILE), Lexicon(TEXT)
    mode = hover(analysis, lex, TEXT.index("by exact") + 4)
    assert mode is not None and "`mode` **exact**" in mode.markdown and "**similarity**" not in mode.markdown
    param = hover(analysis, lex, TEXT.index("(options") + 2)
    assert param is not None and param.markdown.startswith("**options**: `list[str]`")
