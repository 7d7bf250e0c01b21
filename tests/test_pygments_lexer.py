"""The Pygments lexer for .sf: no Error tokens on any shipped recipe, found by alias and by file name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, String

from sfdsl.integrations.pygments_lexer import SfLexer
from tests.conftest import REPO

SOURCES = sorted((REPO / "recipes").glob("*.sf")) + sorted((REPO / "tests/fixtures/ok").glob("*.sf"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_shipped_recipe_lexes_without_error_tokens(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tokens = list(SfLexer().get_tokens(text))
    errors = [value for kind, value in tokens if kind in Error]
    assert not errors, f"{path.name}: Error tokens {errors[:5]}"
    assert "".join(value for _, value in tokens) == (text if text.endswith("\n") else text + "\n")
    kinds = {kind for kind, _ in tokens}
    assert Name.Function in kinds and Keyword in kinds
    if path.parent.name == "recipes":
        assert Comment.Single in kinds


def test_tokens_of_a_small_recipe() -> None:
    source = '''# doc
recipe r(q: str, n: int = 2) -> answer {
  prompt p = "Say {{ q }}"
  xs = generate p (n: n, stop: "\\n")
  a = extract regex /is (\\d+)/i from xs
  w = s.logprob / max(s.tokens, 1)
  return answer: a, score: none
}
'''
    tokens = [(kind, value) for kind, value in SfLexer().get_tokens(source) if value.strip()]
    assert (Name.Function, "r") in tokens
    assert (String.Interpol, "{{ q }}") in tokens
    assert (String.Regex, "/is (\\d+)/i") in tokens
    assert (String.Escape, "\\n") in tokens
    assert (Keyword.Type, "str") in tokens and (Name.Builtin, "max") in tokens
    assert (Name.Attribute, "score") in tokens and (Keyword.Constant, "none") in tokens
    assert (Keyword, "generate") in tokens


def test_pygments_finds_the_lexer_by_alias_and_file_name() -> None:
    assert isinstance(get_lexer_by_name("sf"), SfLexer)
    assert isinstance(get_lexer_for_filename("recipe.sf"), SfLexer)


def test_pygmentize_highlights_a_recipe() -> None:
    done = subprocess.run([sys.executable, "-m", "pygments", "-l", "sf", "-f", "html",
                           str(REPO / "recipes/chain_of_thought.sf")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '<span class="nf">chain_of_thought</span>' in done.stdout
    assert 'class="err"' not in done.stdout


def test_every_word_of_the_grammar_is_highlighted_as_a_keyword() -> None:
    from sfdsl.integrations.pygments_lexer import KEYWORDS

    assert {"recipe", "generate", "vote", "refine", "abstain", "using", "when"} <= set(KEYWORDS)
    for word in KEYWORDS:
        [(kind, value), *_] = list(SfLexer().get_tokens(f"{word} "))
        assert value == word and kind in Keyword, (word, kind)
