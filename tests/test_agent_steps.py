"""The structured-reply steps, `act` (a tool call or a text answer) and `generate (schema:)`, scripted."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.agent_values import ToolSpec
from sfdsl.errors import CompileError, StepError
from sfdsl.runtime.agent_steps import action_schema
from tests.conftest import events

ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TOOLS = [ADD, WEATHER]
MESSAGES = [{"role": "user", "content": "What is 2 plus 3?"}]
ACT = '''
recipe r(messages: conversation, tools: tools, choice: str = "auto") -> answer {
  prompt p = chat {
    conversation: messages
  }
  a = act p (tools: tools, tool_choice: choice, n: 3, retries: 1)
  return answer: a[0].name + ":" + a[1].kind + ":" + a[2].text
}
'''


def run(source: str, replies: list[str], **inputs: Any) -> tuple[Any, ScriptedBackend]:
    backend = ScriptedBackend(replies)
    result = sfdsl.compile(source, file="r.sf").recipe().run({"messages": MESSAGES, "tools": TOOLS, **inputs},
                                                             backend=backend)
    return result, backend


def test_act_samples_n_actions_in_one_grammar_constrained_request() -> None:
    result, backend = run(ACT, ['{"name": "add", "arguments": {"a": 2, "b": 3}}', '{"answer": "Five."}',
                                '{"answer": "5"}'])
    assert result.answer == "add:text:5"
    [request] = backend.requests
    assert request.n == 3 and request.grammar is not None and '"\\"add\\""' in request.grammar
    system = request.prompt.messages[0]
    assert system.role == "system" and "You can call these tools:" in system.content
    assert '"name": "weather"' in system.content


def test_an_invalid_reply_is_asked_again_then_accepted(caplog: pytest.LogCaptureFixture) -> None:
    replies = ['{"name": "add", "arguments": {"a": "two", "b": 3}}', '{"answer": "x"}', '{"answer": "y"}',
               '{"name": "add", "arguments": {"a": 2, "b": 3}}']
    with caplog.at_level(logging.INFO, logger="sfdsl"):
        result, backend = run(ACT, replies)
    logs = events(caplog)
    assert result.answer == "add:text:y"
    assert [r.n for r in backend.requests] == [3, 1]
    assert backend.requests[1].temperature >= 0.7 and backend.requests[1].seed != backend.requests[0].seed
    retried = [e for e in logs if e["event"] == "reply_retried"]
    assert retried and "do not fit its schema" in retried[0]["problem"]
    assert result.cost.calls == 2


@pytest.mark.parametrize(("reply", "problem"), [
    ('{"name": "divide", "arguments": {}}', "not one of the tools"),
    ('{"name": "add", "arguments": {"a": 1}}', "'b' is a required property"),
    ('{"name": "add", "arguments"', "not JSON"),
])
def test_a_reply_still_invalid_after_the_retries_fails_the_step_at_its_line(reply: str, problem: str) -> None:
    with pytest.raises(StepError) as info:
        run(ACT, [reply, '{"answer": "x"}', '{"answer": "y"}', reply])
    assert problem in str(info.value) and "after 1 retries" in str(info.value)
    assert info.value.location == "r.sf:6:7"


def test_tool_choice_shapes_the_grammar_and_what_is_accepted() -> None:
    tools = [ToolSpec.model_validate(t) for t in TOOLS]
    assert action_schema(tools, "none") == {"type": "object", "properties": {"answer": {"type": "string"}},
                                            "required": ["answer"], "additionalProperties": False}
    assert action_schema(tools, "weather")["properties"]["name"] == {"const": "weather"}
    assert len(action_schema(tools, "required")["oneOf"]) == 2 and len(action_schema(tools, "auto")["oneOf"]) == 3
    with pytest.raises(StepError, match="tool_choice is 'required'"):
        run(ACT, ['{"answer": "a"}'] * 6, choice="required")
    with pytest.raises(StepError, match="neither one of auto, required, none nor the name of a tool"):
        run(ACT, [], choice="divide")


def test_a_returned_call_fills_the_results_tool_calls() -> None:
    source = '''
recipe r(messages: conversation, tools: tools) -> answer {
  prompt p = chat {
    conversation: messages
  }
  a = act p (tools: tools)
  return a
}
'''
    result, _ = run(source, ['{"name": "weather", "arguments": {"city": "Paris"}}'])
    assert result.answer is None
    [call] = result.tool_calls
    assert call.name == "weather" and call.arguments == {"city": "Paris"} and call.id.startswith("call_")
    assert result.outputs["tool_calls"] == [call.model_dump()]
    again, _ = run(source, ['{"name": "weather", "arguments": {"city": "Paris"}}'])
    assert again.tool_calls[0].id == call.id  # ids derive from the run seed and the step
    text, _ = run(source, ['{"answer": "It is sunny."}'])
    assert text.answer == "It is sunny." and text.tool_calls == []


def test_each_turn_of_a_conversation_gets_its_own_call_id() -> None:
    source = '''
recipe r(messages: conversation, tools: tools) -> answer {
  prompt p = chat {
    conversation: messages
  }
  return act p (tools: tools)
}
'''
    reply = '{"name": "weather", "arguments": {"city": "Paris"}}'
    first, _ = run(source, [reply])
    [call] = first.tool_calls
    turn = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call.to_wire()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second, _ = run(source, [reply], messages=turn)
    assert second.tool_calls[0].id != call.id  # a client matching results to calls by id needs them unique


def test_act_checks_its_parameters_and_bounds_its_retries() -> None:
    with pytest.raises(CompileError) as info:
        sfdsl.compile('recipe r(q: str) {\n  prompt p = "x"\n  a = act p (tools: q)\n  return a\n}')
    assert [d.code for d in info.value.diagnostics] == ["SF306"]
    with pytest.raises(CompileError) as info:
        sfdsl.compile('recipe r(q: str) {\n  prompt p = "x"\n  a = act p (n: 2)\n  return a\n}')
    assert [d.code for d in info.value.diagnostics] == ["SF307"]
    bound = sfdsl.compile(ACT).recipe().bound()
    assert (bound.calls, bound.tokens, bound.parallel) == (2, 2 * 3 * 256, 3)


SCHEMA_SOURCE = '''
recipe r(q: str) -> (answer, age) {
  prompt p = "Who is in {{ q }}?"
  people = generate p (n: 2, schema: {"type": "object", "properties": {"name": {"type": "string"},
                                       "age": {"type": "integer"}}, "required": ["name", "age"]})
  return answer: people[0].name, age: people[1].age + 1
}
'''


def test_generate_with_a_schema_yields_records_whose_fields_the_checker_knows() -> None:
    backend = ScriptedBackend(['{"name": "Ann", "age": 31}', '{"age": "old", "name": "Bo"}',
                               '{"name": "Bo", "age": 3}'])
    result = sfdsl.compile(SCHEMA_SOURCE).recipe().run({"q": "the text"}, backend=backend)
    assert result.answer == "Ann" and result.outputs["age"] == 4
    assert backend.requests[0].grammar is not None and [r.n for r in backend.requests] == [2, 1]
    with pytest.raises(CompileError) as info:
        sfdsl.compile(SCHEMA_SOURCE.replace("people[0].name", "people[0].nme"))
    assert [d.code for d in info.value.diagnostics] == ["SF302"]


@pytest.mark.parametrize(("schema", "message"), [
    ('{"type": "objet"}', "not a valid JSON Schema"),
    ('{"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}', "cannot express"),
])
def test_a_bad_literal_schema_is_a_located_compile_error(schema: str, message: str) -> None:
    source = f'recipe r() {{\n  prompt p = "x"\n  x = generate p (schema: {schema})\n  return x\n}}'
    with pytest.raises(CompileError) as info:
        sfdsl.compile(source, file="s.sf")
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "SF315" and message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 27)


def test_generate_takes_one_output_constraint() -> None:
    with pytest.raises(CompileError) as info:
        sfdsl.compile('recipe r() {\n  prompt p = "x"\n  x = generate p (regex: /a/, schema: {"type": "string"})\n'
                      '  y = generate p (retries: 1)\n  return x + y\n}')
    assert [d.code for d in info.value.diagnostics] == ["SF317", "SF317"]


def test_a_schema_input_constrains_generation_at_run_time() -> None:
    source = ('recipe r(s: schema) -> answer {\n  prompt p = "x"\n  x = generate p (schema: s, retries: 0)\n'
              '  return x\n}')
    backend = ScriptedBackend(["[1, 2]"])
    result = sfdsl.compile(source).recipe().run({"s": {"type": "array", "items": {"type": "integer"}}},
                                                 backend=backend)
    assert result.answer == [1, 2]
    with pytest.raises(StepError, match="does not fit the schema"):
        sfdsl.compile(source).recipe().run({"s": {"type": "integer"}}, backend=ScriptedBackend(['"a"']))
    assert json.loads("[1, 2]") == result.answer
