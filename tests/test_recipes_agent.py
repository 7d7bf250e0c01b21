"""The agent recipes (agent_step, tool_vote, verify_then_act, json_vote): scripted control flow, the OpenAI
loopback server, `sfrun check` errors, and the real SmolLM2 model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from openai_fake import OpenAIServer

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.cli import main
from sfdsl.json_schema import validation_problem
from sfdsl.runtime.backends.openai_http import OpenAIBackend
from sfdsl.runtime.results import RunResult

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
ADD = {"type": "function", "function": {"name": "add", "description": "Add two integers a and b.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
WEATHER = {"type": "function", "function": {"name": "weather", "description": "The weather in a city.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 24}}, "required": ["city"]}}}
TOOLS = [ADD, WEATHER]
SCHEMAS = {"add": ADD["function"]["parameters"], "weather": WEATHER["function"]["parameters"]}
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 12 plus 30?"}]
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 24}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
#: Five samples: three are one call written differently (key order, spacing, 2 vs 2.0), two are other calls.
FIVE = ['{"name": "add", "arguments": {"a": 2, "b": 3}}',
        '{"name": "weather", "arguments": {"city": "Paris"}}',
        '{"arguments":{"b":3,"a":2.0},"name":"add"}',
        '{"name": "add", "arguments": {"a": 5, "b": 3}}',
        '{ "name" : "add" , "arguments" : { "b" : 3.0 , "a" : 2 } }']


def run(name: str, backend: Any, **inputs: Any) -> RunResult:
    return sfdsl.load(RECIPES / f"{name}.sf").recipe().run(inputs, backend=backend)


def assert_valid_call(result: RunResult) -> None:
    [call] = result.tool_calls
    assert call.name in SCHEMAS and validation_problem(call.arguments, SCHEMAS[call.name]) is None, call


# ---------------------------------------------------------------- scripted


def test_tool_vote_returns_the_call_three_of_five_samples_agree_on() -> None:
    backend = ScriptedBackend(FIVE)
    result = run("tool_vote", backend, messages=MESSAGES, tools=TOOLS)
    assert result.score == pytest.approx(0.6) and result.outputs["votes"] == 5
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("add", {"a": 2, "b": 3})
    assert result.answer is None
    [request] = backend.requests
    assert request.n == 5 and request.grammar is not None


def test_tool_vote_below_the_threshold_asks_or_abstains() -> None:
    split = [FIVE[0], FIVE[1], FIVE[3], '{"answer": "42"}', '{"name": "weather", "arguments": {"city": "Rome"}}']
    result = run("tool_vote", ScriptedBackend([*split, "Which numbers should I add?"]), messages=MESSAGES, tools=TOOLS)
    assert result.answer == "Which numbers should I add?" and result.tool_calls == [] and result.score == 0.2
    abstained = run("tool_vote", ScriptedBackend(split), messages=MESSAGES, tools=TOOLS, below="abstain")
    assert abstained.abstained and abstained.reason == "the sampled actions disagree"


def test_agent_step_takes_one_greedy_action() -> None:
    backend = ScriptedBackend(['{"answer": "42"}'])
    result = run("agent_step", backend, messages=MESSAGES, tools=TOOLS)
    assert result.answer == "42" and result.tool_calls == []
    assert backend.requests[0].temperature == 0 and backend.requests[0].n == 1


def test_verify_then_act_resamples_with_the_critique_until_the_check_passes() -> None:
    def judge(prompt: str, continuation: str) -> float:
        approve = "weather" not in prompt.split("Proposed next action:")[-1]
        return -0.1 if (continuation == " (A)") == approve else -3.0

    replies = [FIVE[1], "Nobody asked about the weather.", FIVE[0]]
    backend = ScriptedBackend(replies, scores=judge)
    result = run("verify_then_act", backend, messages=MESSAGES, tools=TOOLS)
    assert result.outputs["rounds"] == 2 and result.score > 0.5
    assert result.tool_calls[0].arguments == {"a": 2, "b": 3}
    retry = [r for r in backend.requests if hasattr(r, "n")][-1].prompt.canonical()
    assert 'rejected the action weather({"city":"Paris"}) because: Nobody asked about the weather.' in retry


def test_json_vote_votes_over_records_written_differently() -> None:
    replies = ['{"name": "Ann", "age": 31}', '{"age": 31.0, "name": "Ann"}', '{"name": "Bo", "age": 4}',
               '{ "name":"Ann" , "age":31 }', '{"name": "Bo", "age": 4}']
    result = run("json_vote", ScriptedBackend(replies), question="Ann is 31.", schema=PERSON)
    assert result.answer == {"name": "Ann", "age": 31} and result.score == pytest.approx(0.6)


# ---------------------------------------------------------------- the OpenAI loopback server


def run_openai(server: OpenAIServer, name: str, **inputs: Any) -> RunResult:
    async def go() -> RunResult:
        backend = OpenAIBackend(base_url=server.base_url, backoff=0.01)
        try:
            return await sfdsl.load(RECIPES / f"{name}.sf").recipe().arun(inputs, backend=backend)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_tool_vote_over_an_openai_server_sends_tools_and_retries_an_invalid_call() -> None:
    invalid = '{"name": "add", "arguments": "{\\"a\\": \\"two\\"}"}'  # arguments that do not fit the schema
    replies = [FIVE[0], FIVE[1], invalid, FIVE[3], FIVE[4], FIVE[2]]
    with OpenAIServer(ScriptedBackend(replies)) as server:
        result = run_openai(server, "tool_vote", messages=MESSAGES, tools=TOOLS)
        bodies = [r["body"] for r in server.requests]
    assert result.score == pytest.approx(0.6) and result.tool_calls[0].arguments == {"a": 2, "b": 3}
    assert result.tool_calls[0].id.startswith("call_")
    assert len(bodies) == 6  # five samples, then one retry of the invalid one
    assert all(b["tools"] == TOOLS and b["tool_choice"] == "auto" for b in bodies)
    assert bodies[0]["messages"][:2] == [{"role": "system", "content": "You are a helpful assistant. Call a tool "
                                          "when it helps answer the user."}, MESSAGES[0]]
    assert "grammar" not in bodies[0] and "You can call these tools" not in json.dumps(bodies[0]["messages"])


def test_json_vote_over_an_openai_server_uses_response_format_and_retries_an_invalid_record() -> None:
    replies = ['{"name": "Ann", "age": 31}', '{"name": "Ann"}', '{"age": 31, "name": "Ann"}',
               '{"name": "Bo", "age": 4}', '{"name": "Bo", "age": 4}', '{"name": "Ann", "age": 31.0}']
    with OpenAIServer(ScriptedBackend(replies)) as server:
        result = run_openai(server, "json_vote", question="Ann is 31.", schema=PERSON)
        bodies = [r["body"] for r in server.requests]
    assert result.answer == {"name": "Ann", "age": 31} and result.score == pytest.approx(0.6)
    assert len(bodies) == 6
    assert bodies[0]["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer",
                                                                                  "schema": PERSON}}


def test_a_conversation_with_tool_turns_goes_to_the_server_as_messages() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "add", "arguments": '{"a":12,"b":30}'}}
    conversation = [*MESSAGES, {"role": "assistant", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "call_9", "content": "42"}]
    with OpenAIServer(ScriptedBackend(["The sum is 42."])) as server:
        result = run_openai(server, "agent_step", messages=conversation, tools=TOOLS)
        [body] = [r["body"] for r in server.requests]
    assert result.answer == "The sum is 42."
    assert body["messages"][3]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 12, "b": 30}'}
    assert body["messages"][4] == {"role": "tool", "content": "42", "tool_call_id": "call_9"}


# ---------------------------------------------------------------- sfrun check


@pytest.mark.parametrize(("body", "where", "code"), [
    ('x = generate p (schema: {"type": "object", "properties": {"a": {"type": 7}}})\n  return x', "3:27", "SF315"),
    ("x = extract number from tools\n  return x", "3:27", "SF306"),
    ("x = generate p (stop: tools)\n  return x", "3:25", "SF306"),
])
def test_sfrun_check_locates_agent_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str,
                                            where: str, code: str) -> None:
    recipe = tmp_path / "bad.sf"
    recipe.write_text(f'recipe r(tools: tools) {{\n  prompt p = "x"\n  {body}\n}}\n', encoding="utf-8")
    assert main(["check", str(recipe)]) == 1
    out = capsys.readouterr()
    assert f"bad.sf:{where}: error[{code}]" in out.out + out.err


# ---------------------------------------------------------------- the real model

SEEDS = range(20)


@pytest.fixture(scope="module")
def real() -> Any:
    runtime = sfdsl.Runtime()
    yield runtime
    runtime.close()


@pytest.mark.real_model
def test_tool_vote_on_smollm2_returns_a_valid_call_for_every_seed(real: Any) -> None:
    recipe = sfdsl.load(RECIPES / "tool_vote.sf").recipe()
    for seed in SEEDS:
        result = recipe.run({"messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "threshold": 0.0,
                             "max_tokens": 40}, seed=seed, runtime=real)
        assert_valid_call(result)


@pytest.mark.real_model
def test_json_vote_on_smollm2_returns_a_schema_valid_record_for_every_seed(real: Any) -> None:
    recipe = sfdsl.load(RECIPES / "json_vote.sf").recipe()
    for seed in SEEDS:
        result = recipe.run({"question": "Ann is 31 years old.", "schema": PERSON, "max_tokens": 40}, seed=seed,
                            runtime=real)
        assert validation_problem(result.answer, PERSON) is None, result.answer
