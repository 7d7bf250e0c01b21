"""Streaming: progress chunks per step, then the answer, then usage, then [DONE]; errors and disconnects."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serve_support import CHAT, Gate, chat, client, make_app, post_then_disconnect

from sfdsl import ScriptedBackend


def events(text: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded except ``[DONE]``."""
    lines = [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def stream(path: str, payload: dict[str, Any], backend: Any = None) -> tuple[int, str, str]:
    async def go() -> tuple[int, str, str]:
        async with client(make_app(backend)) as http, http.stream("POST", path, json=payload) as reply:
            text = "".join([chunk async for chunk in reply.aiter_text()])
            return reply.status_code, reply.headers["content-type"], text

    return asyncio.run(go())


def test_chat_stream_orders_role_progress_answer_finish_usage_done() -> None:
    status, content_type, text = stream(CHAT, chat(stream=True, stream_options={"include_usage": True}))
    assert status == 200 and content_type.startswith("text/event-stream")
    chunks = events(text)
    assert chunks[-1] == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    progress = [c for c in chunks[:-1] if c["choices"] and "sfdsl" in c["choices"][0]["delta"]]
    answer, finish, final = chunks[-4], chunks[-3], chunks[-2]
    assert chunks[1: len(progress) + 1] == progress and len(progress) == 4  # generate, extract, vote, return
    assert [p["choices"][0]["delta"]["sfdsl"]["node_id"].split("/")[-1] for p in progress][:3] == \
        ["samples", "answers", "v"]
    assert all(p["choices"][0]["delta"]["sfdsl"]["location"].endswith(tuple("0123456789")) for p in progress)
    assert answer["choices"][0]["delta"] == {"content": "12"} and answer["choices"][0]["finish_reason"] is None
    assert finish["choices"][0]["delta"] == {} and finish["choices"][0]["finish_reason"] == "stop"
    assert finish["sfdsl"]["score"] == 1.0
    assert final["choices"] == [] and final["usage"]["completion_tokens"] > 0
    assert final["object"] == "chat.completion.chunk"
    assert all(c["usage"] is None for c in chunks[:-2])
    assert len({c["id"] for c in chunks[:-1]}) == 1


def test_usage_chunk_only_when_asked_so_every_chunk_has_choices() -> None:
    _, _, text = stream(CHAT, chat(stream=True))
    chunks = events(text)[:-1]
    assert all(c["choices"] and "usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "12"


def test_completion_stream_puts_progress_in_the_choice() -> None:
    status, _, text = stream("/v1/completions", {"model": "chain_of_thought", "prompt": "a dozen?", "stream": True})
    chunks = events(text)
    assert status == 200 and chunks[-1] == "[DONE]"
    assert chunks[0]["object"] == "text_completion" and chunks[0]["choices"][0]["sfdsl"]["kind"] == "generate"
    assert chunks[-3]["choices"][0]["text"] == "12" and chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_failed_run_streams_one_error_chunk_then_done() -> None:
    _, _, text = stream(CHAT, chat(stream=True), backend=ScriptedBackend([]))
    chunks = events(text)
    assert chunks[-1] == "[DONE]" and chunks[-2]["error"]["code"] == "script_exhausted"
    assert all("usage" not in c for c in chunks[:-1])


def test_stream_refused_before_headers_when_the_request_is_bad() -> None:
    status, content_type, text = stream(CHAT, chat(stream=True, n=10**6))
    assert status == 400 and content_type.startswith("application/json") and "n_out_of_range" in text


def test_disconnect_during_a_stream_cancels_the_run() -> None:
    gate = Gate()
    app = make_app(ScriptedBackend(gate))
    sent = asyncio.run(post_then_disconnect(app, chat("chain_of_thought", stream=True), gate))
    assert gate.cancelled == 1
    assert sent[0]["status"] == 200 and all(b"[DONE]" not in m.get("body", b"") for m in sent)
    limiter = app.state.runner.limiter
    assert limiter.in_flight == 0 and limiter.waiting == 0


def test_a_cancelled_stream_is_counted_as_499_with_its_time_and_tokens() -> None:
    gate = Gate()
    app = make_app(ScriptedBackend(gate))
    sent = asyncio.run(post_then_disconnect(app, chat("chain_of_thought", stream=True), gate))
    assert sent[0]["status"] == 200
    metrics = app.state.runner.metrics.render().decode()
    assert 'sfdsl_requests_total{path="/v1/chat/completions",status="499"} 1.0' in metrics
    assert 'status="200"' not in metrics
    assert 'sfdsl_runs_cancelled_total{model="chain_of_thought"} 1.0' in metrics
    assert 'sfdsl_run_seconds_count{model="chain_of_thought"} 1.0' in metrics


def test_streamed_tokens_of_a_cancelled_run_are_counted() -> None:
    from sfdsl.serve.metrics import RunSpend

    spent = RunSpend()
    for _ in range(3):
        spent.piece()
    spent("run_failed", {"reason": "CancelledError", "completion_tokens": 1, "prompt_tokens": 7})
    assert (spent.completion_tokens, spent.prompt_tokens) == (3, 7) and spent.wall_s >= 0
