"""JSON Schemas: checking one, validating values, the grammar llama.cpp's converter builds, and the static type."""

from __future__ import annotations

import pytest

from sfdsl.gbnf import gbnf_problem
from sfdsl.json_schema import gbnf_for_schema, schema_problem, schema_type, validation_problem
from sfdsl.types import BOOL, FLOAT, INT, STR, list_of

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "tags": {"type": "array", "items": {"type": "string"}},
                                           "ok": {"type": "boolean"}, "score": {"type": "number"}},
          "required": ["name", "age"]}


def test_the_converters_grammar_is_gbnf_llama_cpp_accepts() -> None:
    grammar = gbnf_for_schema(PERSON)
    assert gbnf_problem(grammar) is None
    assert 'root ::= "{" space name-kv "," space age-kv' in grammar


@pytest.mark.parametrize("schema", [{"type": "string"}, {"type": "string", "maxLength": 8}, PERSON])
def test_a_json_string_in_the_grammar_admits_no_raw_control_character(schema: dict[str, object]) -> None:
    grammar = gbnf_for_schema(schema)
    [char] = [line for line in grammar.splitlines() if line.startswith("char ::= ")]
    assert char.startswith(r'char ::= [^"\\\x7F\x00-\x1F] | "\\" ')  # as llama.cpp's own converter
    assert gbnf_problem(grammar) is None


@pytest.mark.parametrize(("schema", "problem"), [
    ([1], "must be an object"),
    ({"type": "objekt"}, "not a valid JSON Schema at type"),
    ({"properties": {"a": {"$ref": "https://example.com/a.json"}}}, "cannot express"),
])
def test_a_schema_that_cannot_constrain_generation_says_why(schema: object, problem: str) -> None:
    found = schema_problem(schema)
    assert found is not None and problem in found
    assert schema_problem(PERSON) is None


def test_validation_names_the_first_problem_and_where() -> None:
    assert validation_problem({"name": "Ann", "age": 31.0}, PERSON) is None  # 31.0 is an integer in JSON Schema
    assert validation_problem({"name": "Ann", "age": "x"}, PERSON) == "at age: 'x' is not of type 'integer'"
    assert validation_problem({"age": 3}, PERSON) == "'name' is a required property"


def test_a_literal_object_schema_gives_a_record_of_its_properties() -> None:
    t = schema_type(PERSON)
    assert t.field("name") == STR and t.field("age") == INT and t.field("tags") == list_of(STR)
    assert t.field("ok") == BOOL and t.field("score") == FLOAT and t.field("other") is None
    assert str(schema_type({"type": "array", "items": {"type": "integer"}})) == "list[int]"
    assert str(schema_type({"type": "object"})) == "dict" and str(schema_type({"anyOf": []})) == "any"
