"""Keywords and start tokens are read from the grammar's parse table; expected tokens are shown as literals."""

from __future__ import annotations

from sfdsl.grammar_words import accepted_after, expected_hint, keywords


def test_keywords_are_read_from_the_grammar() -> None:
    words = keywords()
    assert {"RETURN", "IF", "NAME"} <= words.statement_starts and "RBRACE" not in words.statement_starts
    assert {"NUMBER", "STRING", "LSQB", "NOT", "MINUS"} <= words.expression_starts
    assert {"generate", "vote", "refine", "map", "search"} <= set(words.steps)
    assert not {"true", "not", "return"} & set(words.steps)
    assert {"return", "if", "yield", "model", "prompt"} <= set(words.statements)
    assert words.top_level == ("import", "recipe")


def test_expected_tokens_are_literals() -> None:
    assert expected_hint(frozenset({"RPAR", "COMMA"})) == "expected ')' or ','"
    assert expected_hint(frozenset({"NAME"})) == "expected a name"
    top = expected_hint(frozenset({"$END", "RECIPE", "IMPORT"}))
    assert top == "expected 'import', 'recipe' or the end of the code"


def test_statement_and_expression_starts_are_summarised() -> None:
    assert expected_hint(accepted_after("recipe a() { ")) == "expected a statement or '}'"
    assert expected_hint(accepted_after("recipe a() { x = [")) == "expected an expression or ']'"


def test_too_many_choices_give_no_hint() -> None:
    assert expected_hint(frozenset({"RPAR", "COMMA", "DOT", "LSQB", "ADD_OP", "MUL_OP"})) is None
