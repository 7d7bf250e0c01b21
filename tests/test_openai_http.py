"""The OpenAI HTTP backend against the real loopback server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from openai_fake import OpenAIServer, tokenize

from sfdsl.errors import BackendError, BackendTimeout, ContextOverflow, InputError
from sfdsl.runtime.backends.base import ChoiceRequest, GenerateRequest, Message, Prompt, ScoreRequest
from sfdsl.runtime.backends.openai_http import OpenAIBackend, chatml
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.cache import CachedBackend

T = TypeVar("T")
TABLE = {" Paris": -0.5, " London": -2.0, " France": -0.25, " England": -1.0, " yes": -0.2, " no": -1.8}
DEFAULT_LOGPROB = -3.0
QUESTION = "Q: capital of France? A:"


def score_fn(prompt: str, continuation: str) -> float:
    return TABLE.get(continuation, DEFAULT_LOGPROB)


def reply_fn(prompt: str, index: int) -> str:
    if "overflow" in prompt:
        raise ContextOverflow("prompt of 9000 tokens does not fit 2048")
    if "stopme" in prompt:
        return "one two STOP three"
    if prompt.endswith("<assistant>The answer is"):
        return " 42"
    return f"sample {index}"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    backend = ScriptedBackend(reply_fn, scores=score_fn, latency=0.02)
    with OpenAIServer(backend, candidates=(" yes", " no", " maybe")) as srv:
        yield srv


def call(server: OpenAIServer, fn: Callable[[OpenAIBackend], Awaitable[T]], **params: Any) -> T:
    async def main() -> T:
        backend = OpenAIBackend.from_params({"base_url": server.base_url, "backoff": 0.01, **params})
        try:
            return await fn(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def bodies(server: OpenAIServer) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests]


def test_models_endpoint(server: OpenAIServer) -> None:
    data = httpx.get(server.base_url + "/models").json()
    assert data["data"][0]["id"] == "scripted"


def test_generate_n_in_one_request(server: OpenAIServer) -> None:
    request = GenerateRequest(prompt=Prompt(text="hello"), n=3, seed=5, temperature=0.7, top_k=40)
    out = call(server, lambda b: b.generate(request), supports_n=True)
    assert [c.text for c in out] == ["sample 0", "sample 1", "sample 2"]
    assert [c.index for c in out] == [0, 1, 2]
    assert all(c.completion_tokens == 2 and c.prompt_tokens == 1 and c.finish_reason == "eos" for c in out)
    (body,) = bodies(server)
    assert body["n"] == 3 and body["seed"] == 5 and body["top_k"] == 40 and body["temperature"] == 0.7
    assert server.requests[0]["path"] == "/v1/completions"


def test_generate_n_fans_out_with_seeds(server: OpenAIServer) -> None:
    request = GenerateRequest(prompt=Prompt(text="hello"), n=3, seed=7, temperature=0.7)
    out = call(server, lambda b: b.generate(request))
    assert [c.index for c in out] == [0, 1, 2]
    assert sorted(b["seed"] for b in bodies(server)) == [7, 8, 9]
    assert all("n" not in b for b in bodies(server))


def test_chat_prefill_is_continued(server: OpenAIServer) -> None:
    prompt = Prompt(messages=(Message(role="user", content="6*7?"), Message(role="assistant", content="The answer is")))
    (out,) = call(server, lambda b: b.generate(GenerateRequest(prompt=prompt, logprobs=True)))
    assert out.text == " 42" and out.finish_reason == "eos" and out.logprobs == [DEFAULT_LOGPROB]
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert request["body"]["continue_final_message"] is True and request["body"]["add_generation_prompt"] is False


def test_chat_disabled_sends_chatml_text(server: OpenAIServer) -> None:
    prompt = Prompt(messages=(Message(role="user", content="hi"),))
    call(server, lambda b: b.generate(GenerateRequest(prompt=prompt)), chat=False)
    (request,) = server.requests
    assert request["path"] == "/v1/completions"
    assert request["body"]["prompt"] == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_stop_length_and_logprobs(server: OpenAIServer) -> None:
    stop = GenerateRequest(prompt=Prompt(text="stopme"), stop=("STOP",), logprobs=True)
    (out,) = call(server, lambda b: b.generate(stop))
    assert out.text == "one two " and out.finish_reason == "stop"
    assert out.logprobs == pytest.approx([DEFAULT_LOGPROB / 2] * 2)
    length = GenerateRequest(prompt=Prompt(text="stopme"), max_tokens=2)
    (out,) = call(server, lambda b: b.generate(length))
    assert out.text == "one two" and out.finish_reason == "length"


def test_grammar_field(server: OpenAIServer) -> None:
    request = GenerateRequest(prompt=Prompt(text="hello"), grammar='root ::= "a"')
    call(server, lambda b: b.generate(request), grammar_field="guided_grammar")
    call(server, lambda b: b.generate(request))
    first, second = bodies(server)
    assert first["grammar"] == first["guided_grammar"] == 'root ::= "a"'
    assert "guided_grammar" not in second and second["grammar"] == 'root ::= "a"'


def test_score_text_and_chat(server: OpenAIServer) -> None:
    request = ScoreRequest(prompt=Prompt(text=QUESTION), continuations=(" Paris", " London", " Paris France"))
    scores = call(server, lambda b: b.score(request))
    assert [s.token_logprobs for s in scores] == [[-0.5], [-2.0], [-0.5, -0.25]]
    assert scores[0].prompt_tokens == len(tokenize(QUESTION))
    assert all(b["echo"] is True for b in bodies(server))
    chat = ScoreRequest(prompt=Prompt(messages=(Message(role="user", content="capital?"),)), continuations=(" Paris",))
    (score,) = call(server, lambda b: b.score(chat))
    assert score.logprob == -0.5 and bodies(server)[-1]["prompt"].startswith(chatml(chat.prompt))
    with pytest.raises(BackendError, match="text prompt"):
        call(server, lambda b: b.score(chat), chatml_fallback=False)


def test_score_token_straddling_the_boundary(server: OpenAIServer) -> None:
    request = ScoreRequest(prompt=Prompt(text="A: "), continuations=("Paris",))
    (score,) = call(server, lambda b: b.score(request))
    assert score.token_logprobs == [-0.5]  # the echoed token is " Paris"


def test_choice_probs_single_token_uses_top_logprobs(server: OpenAIServer) -> None:
    probs = call(server, lambda b: b.choice_probs(ChoiceRequest(prompt=Prompt(text=QUESTION), choices=(" yes", " no"))))
    expected = [math.exp(-0.2), math.exp(-1.8)]
    assert probs == pytest.approx([p / sum(expected) for p in expected])
    (body,) = bodies(server)
    assert body["max_tokens"] == 1 and body["logprobs"] == 20 and "echo" not in body


def test_choice_probs_missing_word_is_very_unlikely(server: OpenAIServer) -> None:
    probs = call(
        server, lambda b: b.choice_probs(ChoiceRequest(prompt=Prompt(text=QUESTION), choices=(" yes", " nope")))
    )
    assert probs[0] > 0.99 and len(server.requests) == 1


def test_choice_probs_multi_token_falls_back_to_score(server: OpenAIServer) -> None:
    request = ChoiceRequest(prompt=Prompt(text=QUESTION), choices=(" Paris France", " London England"))
    probs = call(server, lambda b: b.choice_probs(request))
    expected = [math.exp(-0.75), math.exp(-3.0)]
    assert probs == pytest.approx([p / sum(expected) for p in expected])
    assert sum(1 for b in bodies(server) if b.get("echo")) == 2


def test_concurrency_limit_is_respected(server: OpenAIServer) -> None:
    async def many(backend: OpenAIBackend) -> None:
        await asyncio.gather(*(backend.generate(GenerateRequest(prompt=Prompt(text=f"p{i}"))) for i in range(8)))

    call(server, many, max_concurrency=2)
    assert len(server.requests) == 8 and server.max_in_flight == 2


def test_retries_server_errors_then_succeeds(server: OpenAIServer) -> None:
    server.inject_fault(status=500, count=2)
    (out,) = call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))), max_retries=3)
    assert out.text == "sample 0" and len(server.requests) == 3


def test_retries_exhausted_raise_backend_error(server: OpenAIServer) -> None:
    server.inject_fault(status=503, count=5, message="overloaded")
    with pytest.raises(BackendError, match=r"503.*overloaded") as info:
        call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))), max_retries=1)
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError) and len(server.requests) == 2


def test_429_honours_retry_after(server: OpenAIServer) -> None:
    server.inject_fault(status=429, retry_after=0.3, message="slow down")
    start = time.perf_counter()
    (out,) = call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))))
    assert out.text == "sample 0" and time.perf_counter() - start >= 0.3


def test_timeout_raises_backend_timeout(server: OpenAIServer) -> None:
    server.inject_fault(status=None, delay=1.0)
    start = time.perf_counter()
    with pytest.raises(BackendTimeout) as info:
        call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))), timeout=0.2)
    assert isinstance(info.value.__cause__, httpx.TimeoutException) and time.perf_counter() - start < 0.9


def test_context_overflow_is_translated(server: OpenAIServer) -> None:
    with pytest.raises(ContextOverflow, match="9000 tokens") as info:
        call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="overflow"))))
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError) and len(server.requests) == 1


def test_other_4xx_is_not_retried(server: OpenAIServer) -> None:
    server.inject_fault(status=401, message="bad key")
    with pytest.raises(BackendError, match=r"401.*bad key") as info:
        call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))))
    assert not isinstance(info.value, ContextOverflow) and len(server.requests) == 1


def test_connection_refused_after_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.01)

    async def main() -> None:
        try:
            await backend.generate(GenerateRequest(prompt=Prompt(text="hello")))
        finally:
            await backend.aclose()

    with pytest.raises(BackendError, match="after 3 tries") as info:
        asyncio.run(main())
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_from_params_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"unknown.*temprature"):
        OpenAIBackend.from_params({"base_url": "http://127.0.0.1:1/v1", "temprature": 0})
    with pytest.raises(InputError, match="base_url"):
        OpenAIBackend.from_params({"model": "x"})
    with pytest.raises(InputError, match="http://"):
        OpenAIBackend.from_params({"base_url": "127.0.0.1:8080/v1"})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    backend = OpenAIBackend.from_params({"base_url": "http://127.0.0.1:1/v1/", "model": "m"})
    assert backend._api_key == "sk-test" and backend.model_id == "openai:m@http://127.0.0.1:1/v1"


def test_api_key_is_sent_as_bearer(server: OpenAIServer) -> None:
    call(server, lambda b: b.generate(GenerateRequest(prompt=Prompt(text="hello"))), api_key="sk-xyz")
    assert server.requests[0]["headers"]["authorization"] == "Bearer sk-xyz"


def test_cached_http_backend_repeats_for_free(server: OpenAIServer, tmp_path: Path) -> None:
    request = GenerateRequest(prompt=Prompt(text="hello"), n=2, seed=3, temperature=0.8)

    async def twice(backend: OpenAIBackend) -> list[list[bool]]:
        cached = CachedBackend(backend, path=tmp_path / "c.sqlite")
        try:
            return [[c.cached for c in await cached.generate(request)] for _ in range(2)]
        finally:
            await cached.aclose()

    assert call(server, twice) == [[False, False], [True, True]]
    assert len(server.requests) == 2  # two seeded fan-out requests, once


def test_backend_survives_a_new_event_loop(server: OpenAIServer) -> None:
    backend = OpenAIBackend(base_url=server.base_url)
    request = GenerateRequest(prompt=Prompt(text="hello"))

    async def once() -> str:
        try:
            return (await backend.generate(request))[0].text
        finally:
            await backend.aclose()  # closes the pool; the next call opens a new one

    assert asyncio.run(once()) == asyncio.run(once()) == "sample 0"


def test_server_closes_without_starting() -> None:
    OpenAIServer(ScriptedBackend([])).close()


_VALID = b'{"choices": [{"text": "ok", "index": 0, "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}'


def _http(body: bytes, *, length: int | None = None) -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length or len(body)}\r\n" \
           "connection: close\r\n\r\n"
    return head.encode() + body


async def _raw_server(responses: list[bytes]) -> tuple[asyncio.base_events.Server, list[int]]:
    """A bare HTTP server on a real socket that answers each request with the next canned response."""
    hits: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        hits.append(1)
        writer.write(responses.pop(0) if responses else _http(_VALID))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), hits


@pytest.mark.parametrize(
    "bad",
    [_http(b'{"choices": [{"text": "o'), _http(b"[1, 2]"), _http(b'{"id": "x"}'), _http(b"<html>oops</html>"),
     _http(b'{"choices": [{"text": "ok"', length=400)],
    ids=["truncated-json", "json-list", "no-choices", "html", "short-body"],
)
def test_malformed_200_is_retried_like_a_5xx(bad: bytes) -> None:
    async def main() -> tuple[str, int]:
        server, hits = await _raw_server([bad])
        port = server.sockets[0].getsockname()[1]
        backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.01)
        try:
            (out,) = await backend.generate(GenerateRequest(prompt=Prompt(text="hello")))
            return out.text, len(hits)
        finally:
            await backend.aclose()
            server.close()

    assert asyncio.run(main()) == ("ok", 2)


def test_malformed_200_after_every_retry_is_a_backend_error() -> None:
    async def main() -> None:
        server, hits = await _raw_server([_http(b'{"choices": [')] * 3)
        port = server.sockets[0].getsockname()[1]
        backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, backoff=0.01)
        try:
            await backend.generate(GenerateRequest(prompt=Prompt(text="hello")))
        finally:
            await backend.aclose()
            server.close()
            assert len(hits) == 3

    with pytest.raises(BackendError, match="answered 200 with invalid JSON"):
        asyncio.run(main())

@pytest.mark.parametrize(("supports_n", "sent"), [(False, 5), (True, 1)])
def test_cost_counts_requests_sent_next_to_model_calls(server: OpenAIServer, tmp_path: Path, supports_n: bool,
                                                       sent: int) -> None:
    import sfdsl

    recipe = sfdsl.compile('recipe sc(q: str) {\n  prompt p = "{{ q }}"\n  xs = generate p (n: 5, max_tokens: 4)\n'
                           "  return vote xs by majority\n}\n").recipe()

    async def twice(backend: OpenAIBackend) -> list[sfdsl.RunResult]:
        cached = CachedBackend(backend, path=tmp_path / "c.sqlite")
        return [await recipe.arun(q="hello", backend=cached) for _ in range(2)]

    first, again = call(server, twice, supports_n=supports_n)
    assert (first.cost.calls, first.cost.requests, first.cost.cached_calls) == (1, sent, 0)
    assert len(server.requests) == sent
    assert (again.cost.calls, again.cost.requests, again.cost.cached_calls) == (1, 0, 1)
    assert first.summary()["cost"]["requests"] == sent


def test_tools_and_a_json_schema_travel_on_chat_requests_and_tool_calls_come_back(server: OpenAIServer) -> None:
    from sfdsl.agent_values import ToolSpec
    from sfdsl.runtime.backends.openai_wire import message_tool_calls, wire_tool_choice

    tool = ToolSpec.model_validate({"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}})
    chat = Prompt(messages=(Message(role="user", content="2+3?"),))
    request = GenerateRequest(prompt=chat, tools=(tool,), tool_choice="add", json_schema={"type": "object"})
    [completion] = call(server, lambda b: b.generate(request))
    body = server.requests[-1]["body"]
    assert body["tools"] == [tool.model_dump(exclude_none=True)]
    assert body["tool_choice"] == wire_tool_choice("add") == {"type": "function", "function": {"name": "add"}}
    assert body["response_format"]["json_schema"]["schema"] == {"type": "object"}
    assert completion.tool_calls == ()  # the scripted reply "sample 0" is text, not a call
    calls = message_tool_calls({"tool_calls": [{"function": {"name": "add", "arguments": {"a": 2}}}]})
    assert calls[0].id == "call_0" and calls[0].function.arguments == '{"a": 2}'
    with pytest.raises(BackendError, match="without a function"):
        message_tool_calls({"tool_calls": [{"id": "x"}]})
