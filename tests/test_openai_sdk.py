"""`sfrun serve` through the official `openai` SDK over a loopback socket: the client's own habits, unmodified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from serve_support import RECIPES, running

from sfdsl import ScriptedBackend
from sfdsl.runtime.pool import BackendPool
from sfdsl.serve import RecipeRegistry, ServeConfig, create_app

openai = pytest.importorskip("openai")

FACES = Path(__file__).parent / "fixtures" / "agent" / "agent_faces.sf"
CALC = {"type": "function", "function": {
    "name": "calc", "description": "Evaluate an arithmetic expression.",
    "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"],
                   "additionalProperties": False}}}


def reply(prompt: str, index: int) -> str:
    """Scripted model: a tool call, then an answer from the tool's result; JSON when asked; a chat reply."""
    if "calc" in prompt:
        if "<tool id=" in prompt:
            return '{"answer": "2+3 is ' + prompt.rsplit(">", 1)[1].strip() + '"}'
        return '{"name": "calc", "arguments": {"expr": "2+3"}}'
    if "JSON" in prompt:
        return '{"name": "Ada", "age": 36}'
    if "unsure" in prompt:
        return "I do not know"
    return "Hello there, dear friend"


def registry() -> RecipeRegistry:
    served = [*RecipeRegistry.from_path(RECIPES / "chat.sf"), *RecipeRegistry.from_path(FACES)]
    return RecipeRegistry(served)


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    backend = ScriptedBackend(reply, record=False)
    app = create_app(registry(), config=ServeConfig(), make_pool=lambda alias: BackendPool(backend=backend))
    with running(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_the_canonical_streaming_loop_gets_the_tokens_one_by_one(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi"}],
                                            stream=True)
    pieces = []
    finish = None
    for chunk in stream:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == "Hello there, dear friend"
    assert len([p for p in pieces if p]) == 4 and finish == "stop"


def test_usage_arrives_in_a_last_chunk_only_when_asked(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_a_tools_round_trip(client: openai.OpenAI) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "What is 2+3?"}]
    first = client.chat.completions.create(model="tool_chat", messages=messages, tools=[CALC])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.function.name == "calc" and json.loads(call.function.arguments) == {"expr": "2+3"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "5"}]
    second = client.chat.completions.create(model="tool_chat", messages=messages, tools=[CALC])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content == "2+3 is 5"


def test_structured_output_parses_into_the_model(client: openai.OpenAI) -> None:
    class Person(BaseModel):
        name: str
        age: int

    done = client.chat.completions.parse(model="json_chat", response_format=Person,
                                         messages=[{"role": "user", "content": "Ada as JSON"}])
    assert done.choices[0].message.parsed == Person(name="Ada", age=36)


def test_an_abstention_is_a_refusal_with_null_content(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="careful", messages=[{"role": "user", "content": "unsure?"}])
    message = done.choices[0].message
    assert message.content is None and message.refusal == "the model does not know"
    assert done.choices[0].finish_reason == "stop"


def test_a_reply_cut_by_max_tokens_finishes_with_length(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Say hi"}],
                                          max_tokens=2)
    assert done.choices[0].finish_reason == "length" and done.choices[0].message.content == "Hello there,"
    assert done.model_extra["sfdsl"]["truncated"] is True


def test_models_endpoint_lists_and_retrieves(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} >= {"chat", "tool_chat", "json_chat", "careful"}
    assert client.models.retrieve("chat").id == "chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no_such_recipe")


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"model": "careful", "tools": [CALC]}, "tools"),
    ({"model": "careful", "response_format": {"type": "json_object"}}, "response_format"),
    ({"model": "careful", "n": 2}, "n"),
    ({"model": "careful", "temperature": 0.5}, "temperature"),
    ({"model": "careful", "logprobs": True}, "logprobs"),
    ({"model": "chat", "extra_body": {"frobnicate": 1}}, "frobnicate"),
    ({"model": "chat", "audio": {"voice": "alloy", "format": "wav"}}, "audio"),
])
def test_a_parameter_the_recipe_cannot_honour_is_a_400_naming_it(client: openai.OpenAI, kwargs: dict[str, object],
                                                                   param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], **kwargs)
    assert caught.value.body["param"] == param and param in caught.value.body["message"]


def test_unknown_model_is_a_typed_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"


def test_langchains_chat_openai_binds_tools_against_the_server(client: openai.OpenAI) -> None:
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=str(client.base_url), api_key="unused", model="tool_chat", max_retries=0)
    reply = chat.bind_tools([CALC]).invoke("What is 2+3?")
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("calc", {"expr": "2+3"})]
    streamed = "".join(str(c.content) for c in ChatOpenAI(base_url=str(client.base_url), api_key="unused",
                                                         model="chat").stream("Say hi"))
    assert streamed == "Hello there, dear friend"


def test_streamed_tool_calls_arrive_as_deltas(client: openai.OpenAI) -> None:
    calls = []
    finish = None
    for chunk in client.chat.completions.create(model="tool_chat", tools=[CALC], stream=True,
                                                messages=[{"role": "user", "content": "What is 2+3?"}]):
        calls += chunk.choices[0].delta.tool_calls or []
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [(c.index, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        (0, "calc", {"expr": "2+3"})]
