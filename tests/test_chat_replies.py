"""One mapping out: a run result to a reply, and every face (HTTP, LangChain, MCP) showing the same reply."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import sfdsl
from sfdsl.agent_values import ToolCall
from sfdsl.chat_replies import ChatReply, chat_reply, openai_message, sfdsl_object
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import RunResult
from sfdsl.serve import RecipeRegistry, ServeConfig, create_app

FACES = Path(__file__).parent / "fixtures" / "agent" / "agent_faces.sf"


def result(**fields: Any) -> RunResult:
    return RunResult(run_id="r1", recipe="t", **fields)


CALL = ToolCall(id="call_1", name="calc", arguments={"expr": "2+3"})


@pytest.mark.parametrize(("run", "content", "refusal", "finish", "calls"), [
    (result(answer="4"), "4", None, "stop", 0),
    (result(answer=4.5), "4.5", None, "stop", 0),
    (result(answer={"x": 1}), '{"x": 1}', None, "stop", 0),
    (result(answer=None), None, None, "stop", 0),
    (result(answer="4", abstained=True, reason="unsure"), None, "unsure", "stop", 0),
    (result(answer=None, abstained=True), None, "the recipe abstained", "stop", 0),
    (result(answer="The ans", truncated=True), "The ans", None, "length", 0),
    (result(answer=None, tool_calls=[CALL]), None, None, "tool_calls", 1),
    (result(answer=None, tool_calls=[CALL], truncated=True), None, None, "tool_calls", 1),
    (result(answer=None, tool_calls=[CALL], abstained=True, reason="no"), None, "no", "stop", 0),
])
def test_chat_reply_maps_every_kind_of_result(run: RunResult, content: str | None, refusal: str | None,
                                              finish: str, calls: int) -> None:
    reply = chat_reply(run)
    assert (reply.content, reply.refusal, reply.finish_reason, len(reply.tool_calls)) == \
        (content, refusal, finish, calls)


def test_structured_answer_and_the_openai_message() -> None:
    reply = chat_reply(result(answer={"x": 1}))
    assert reply.structured == {"x": 1}
    message = openai_message(chat_reply(result(tool_calls=[CALL])))
    assert message["content"] is None and message["refusal"] is None
    assert message["tool_calls"] == [{"id": "call_1", "type": "function",
                                      "function": {"name": "calc", "arguments": '{"expr": "2+3"}'}}]


@pytest.mark.parametrize(("reply", "text"), [
    (ChatReply(content="4"), "4"), (ChatReply(content=None, refusal="unsure"), "(declined to answer: unsure)"),
    (ChatReply(content=None), "(no answer)"),
    (ChatReply(content=None, finish_reason="length"), "(no answer: cut short by its token limit)"),
])
def test_the_one_text_of_text_only_faces(reply: ChatReply, text: str) -> None:
    assert reply.text == text


def test_sfdsl_object_keeps_other_outputs_and_the_marks() -> None:
    block = sfdsl_object(result(answer="4", score=0.5, truncated=True, outputs={"answer": "4", "votes": 3}))
    assert block["outputs"] == {"votes": 3} and block["truncated"] is True and block["score"] == 0.5


# ---------------------------------------------------------------- every face, one scripted run

Face = Callable[[str, str, int], tuple[str | None, str | None, str]]


def via_http(reply: str, question: str, max_tokens: int) -> tuple[str | None, str | None, str]:
    backend = sfdsl.ScriptedBackend([reply])
    app = create_app(RecipeRegistry.from_path(FACES), config=ServeConfig(),
                     make_pool=lambda alias: BackendPool(backend=backend))

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            body = (await http.post("/v1/chat/completions", json={
                "model": "careful", "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": question}]})).json()
        await app.state.runner.aclose()
        return dict(body["choices"][0])

    choice = asyncio.run(go())
    return choice["message"]["content"], choice["message"]["refusal"], choice["finish_reason"]


def via_langchain(reply: str, question: str, max_tokens: int) -> tuple[str | None, str | None, str]:
    pytest.importorskip("langchain_core")
    from sfdsl.integrations.langchain import SfdslChatModel

    chat = SfdslChatModel(recipe=FACES, recipe_name="careful", backend=sfdsl.ScriptedBackend([reply]))
    message = chat.invoke(question, max_tokens=max_tokens)
    chat.close()
    refusal = message.additional_kwargs.get("refusal")
    content = None if refusal is not None or not message.content else str(message.content)
    return content, refusal, message.response_metadata["finish_reason"]


def via_mcp(reply: str, question: str, max_tokens: int) -> tuple[str | None, str | None, str]:
    pytest.importorskip("mcp.server.mcpserver")
    from mcp.client import Client

    from sfdsl.integrations.mcp_server import build_server, load_recipes
    from sfdsl.runtime.session import Runtime

    async def go() -> dict[str, Any]:
        async with Runtime(pool=BackendPool(backend=sfdsl.ScriptedBackend([reply]))) as runtime:
            server = build_server(load_recipes(FACES), runtime)
            async with Client(server) as client:
                done = await client.call_tool("careful", {"question": question, "max_tokens": max_tokens})
        assert not done.is_error
        return dict(done.structured_content or {})

    content = asyncio.run(go())
    answer = content["answer"]
    return (None if answer is None else str(answer)), content["refusal"], content["finish_reason"]


@pytest.mark.parametrize("face", [via_http, via_langchain, via_mcp], ids=["http", "langchain", "mcp"])
@pytest.mark.parametrize(("reply", "max_tokens", "expected"), [
    ("four and more", 16, ("four and more", None, "stop")),
    ("I do not know", 16, (None, "the model does not know", "stop")),
    ("one two three", 2, ("one two", None, "length")),
], ids=["answer", "refusal", "truncation"])
def test_every_face_gives_the_same_answer_refusal_and_truncation(
        face: Face, reply: str, max_tokens: int, expected: tuple[str | None, str | None, str]) -> None:
    assert face(reply, "What now?", max_tokens) == expected
