"""The serve app in-process: answers, routing, inputs and every bad-input case of issue 8."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import CHAT, RECIPES, Gate, PlainBackend, chat, client, make_app, post_then_disconnect

from sfdsl import ScriptedBackend
from sfdsl.runtime.backends.base import GenerateRequest
from sfdsl.serve.app import default_pool_factory


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def assert_openai_error(reply: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["message"]
    assert "Traceback" not in reply.text
    if code is not None:
        assert error["code"] == code, error
    return error


def test_chat_completion_returns_answer_usage_and_sfdsl_block() -> None:
    async def go() -> dict[str, Any]:
        async with client(make_app()) as http:
            return (await http.post(CHAT, json=chat())).json()

    body = run(go())
    assert body["object"] == "chat.completion" and body["model"] == "self_consistency"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "12", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    block = body["sfdsl"]
    assert block["score"] == 1.0 and block["abstained"] is False and len(block["run_id"]) == 12
    assert block["bound"]["calls"] >= 1 and block["bound"]["tokens"] > 0


def test_usage_sums_every_model_call_of_the_run() -> None:
    backend = ScriptedBackend(lambda prompt, i: "The answer is 4", scores=lambda p, c: -0.1)

    async def go() -> dict[str, Any]:
        async with client(make_app(backend)) as http:
            return (await http.post(CHAT, json=chat("self_refine", sfdsl={"inputs": {"rounds": 1}}))).json()

    body = run(go())
    generations = [r for r in backend.requests if isinstance(r, GenerateRequest)]
    assert body["sfdsl"]["calls"] == len(backend.requests) and len(generations) >= 2
    assert body["usage"]["completion_tokens"] == sum(4 * r.n for r in generations)  # 4 words per reply


def test_completions_endpoint() -> None:
    async def go() -> dict[str, Any]:
        async with client(make_app()) as http:
            reply = await http.post("/v1/completions", json={"model": "chain_of_thought", "prompt": "a dozen is?"})
            return reply.json()

    body = run(go())
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "12"
    assert body["usage"]["completion_tokens"] > 0 and body["sfdsl"]["recipe"] == "chain_of_thought"


def test_n_seed_temperature_max_tokens_and_extra_inputs_reach_the_recipe() -> None:
    backend = ScriptedBackend(lambda prompt, i: "The answer is 4")

    async def go() -> None:
        async with client(make_app(backend)) as http:
            reply = await http.post(CHAT, json=chat(n=3, seed=11, temperature=0.25, max_tokens=9))
            assert reply.status_code == 200, reply.text
            reply = await http.post(CHAT, json=chat(sfdsl={"inputs": {"n": 2, "max_tokens": 5}}))
            assert reply.status_code == 200, reply.text

    run(go())
    first, second = backend.requests
    assert (first.n, first.temperature, first.max_tokens) == (3, 0.25, 9)
    assert (second.n, second.max_tokens) == (2, 5)


def test_fixed_inputs_apply_under_the_request() -> None:
    backend = ScriptedBackend(lambda prompt, i: "The answer is 4")

    async def go() -> None:
        async with client(make_app(backend, inputs={"n": "2"})) as http:
            assert (await http.post(CHAT, json=chat())).status_code == 200
            assert (await http.post(CHAT, json=chat(n=4))).status_code == 200

    run(go())
    assert [r.n for r in backend.requests] == [2, 4]


def test_models_lists_every_recipe_and_health_answers() -> None:
    import sfdsl

    expected = {name for f in RECIPES.glob("*.sf") for name in sfdsl.load(f).names}

    async def go() -> tuple[Any, Any]:
        async with client(make_app()) as http:
            return (await http.get("/v1/models")).json(), await http.get("/health")

    models, health = run(go())
    assert {m["id"] for m in models["data"]} == expected and models["object"] == "list"
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_clashing_recipe_names_are_served_as_file_colon_recipe(tmp_path: Path) -> None:
    source = 'recipe echo(question: str) -> answer {\n  prompt p = "{{ question }}"\n  said = generate p ' \
             '(max_tokens: 8)\n  return said\n}\n'
    (tmp_path / "one.sf").write_text(source)
    (tmp_path / "two.sf").write_text(source)

    async def go() -> tuple[list[str], int]:
        async with client(make_app(path=tmp_path)) as http:
            ids = [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
            reply = await http.post(CHAT, json=chat("two:echo"))
            return ids, reply.status_code

    ids, status = run(go())
    assert sorted(ids) == ["one:echo", "two:echo"] and status == 200


def test_alias_suffix_selects_a_pool_per_override_and_unknown_alias_is_404() -> None:
    aliases: list[str | None] = []

    async def go() -> None:
        async with client(make_app(aliases=aliases)) as http:
            assert (await http.post(CHAT, json=chat("self_consistency@default"))).status_code == 200
            assert (await http.post(CHAT, json=chat("chain_of_thought@default"))).status_code == 200
            assert (await http.post(CHAT, json=chat("chain_of_thought"))).status_code == 200
            assert_openai_error(await http.post(CHAT, json=chat("chain_of_thought@/etc/passwd")), 404,
                                "model_not_found")

    run(go())
    assert aliases == [None, "default"]  # one pool per override (the plain one made at start-up), shared


def test_metrics_expose_sfdsl_series() -> None:
    async def go() -> str:
        async with client(make_app()) as http:
            await http.post(CHAT, json=chat())
            await http.post(CHAT, content=b"{bad")
            return (await http.get("/metrics")).text

    text = run(go())
    for name in ("sfdsl_runs_in_flight", "sfdsl_queue_depth", "sfdsl_run_seconds_bucket",
                 "sfdsl_tokens_generated_total"):
        assert name in text
    assert 'sfdsl_requests_total{path="/v1/chat/completions",status="200"} 1.0' in text
    assert 'sfdsl_requests_total{path="/v1/chat/completions",status="400"} 1.0' in text


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("invalid JSON", {"content": b'{"model": "self_consistency", "messages": ['}, 400, "invalid_json"),
    ("empty body", {"content": b""}, 400, "invalid_json"),
    ("JSON not an object", {"content": b'["self_consistency"]'}, 400, "invalid_json"),
    ("deeply nested JSON", {"content": b'{"model": ' + b"[" * 5000 + b"]" * 5000 + b"}"}, 400, "json_too_deep"),
    ("moderately nested JSON", {"json": chat(sfdsl={"inputs": {"x": json.loads("[" * 40 + "]" * 40)}})}, 400,
     "json_too_deep"),
    ("non-UTF-8 bytes", {"content": b'{"model": "self_consistency", "messages": "\xff\xfe"}'}, 400, "invalid_encoding"),
    ("model of wrong type", {"json": {"model": 5, "messages": [{"role": "user", "content": "hi"}]}}, 400, None),
    ("messages of wrong type", {"json": {"model": "self_consistency", "messages": "hi"}}, 400, None),
    ("missing messages", {"json": {"model": "self_consistency"}}, 400, None),
    ("empty messages", {"json": {"model": "self_consistency", "messages": []}}, 400, None),
    ("message content of wrong type", {"json": chat() | {"messages": [{"role": "user", "content": 5}]}}, 400, None),
    ("message role unknown", {"json": chat() | {"messages": [{"role": "robot", "content": "hi"}]}}, 400, None),
    ("message not an object", {"json": chat() | {"messages": ["hi"]}}, 400, None),
    ("no user message", {"json": chat() | {"messages": [{"role": "system", "content": "hi"}]}}, 400,
     "invalid_input"),
    ("stream of wrong type", {"json": chat(stream="yes")}, 400, None),
    ("n of wrong type", {"json": chat(n="3")}, 400, None),
    ("absurd n", {"json": chat(n=100000)}, 400, "n_out_of_range"),
    ("absurd n as an input", {"json": chat(sfdsl={"inputs": {"n": 100000}})}, 400, "n_out_of_range"),
    ("zero n", {"json": chat(n=0)}, 400, "n_out_of_range"),
    ("negative max_tokens", {"json": chat(max_tokens=-5)}, 400, None),
    ("unknown input", {"json": chat(sfdsl={"inputs": {"bogus": 1}})}, 400, "invalid_input"),
    ("mistyped input", {"json": chat(sfdsl={"inputs": {"temperature": "hot"}})}, 400, "invalid_input"),
    ("unknown model", {"json": chat("no_such_recipe")}, 404, "model_not_found"),
    ("20 MB body", {"content": b'{"model": "' + b"x" * (20 << 20) + b'"}'}, 413, "body_too_large"),
    ("bad Content-Length", {"content": b"{}", "headers": {"content-length": "12abc"}}, 400, "bad_content_length"),
]


@pytest.mark.parametrize(("case", "request_kw", "status", "code"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(
        case: str, request_kw: dict[str, Any], status: int, code: str | None) -> None:
    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_app()) as http:
            bad = await http.post(CHAT, **request_kw)
            return bad, await http.post(CHAT, json=chat())

    bad, good = run(go())
    error = assert_openai_error(bad, status, code)
    if case == "unknown input":
        assert "bogus" in error["message"]
    if case == "mistyped input":
        assert "temperature" in error["message"]
    assert good.status_code == 200


def test_unknown_path_and_wrong_method_are_openai_errors() -> None:
    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_app()) as http:
            return await http.get("/v1/nothing"), await http.get(CHAT)

    missing, wrong = run(go())
    assert_openai_error(missing, 404)
    assert_openai_error(wrong, 405)


def test_failed_run_returns_a_located_error_not_a_traceback() -> None:
    backend = ScriptedBackend([])  # exhausted at the first call: a backend error

    def broken(prompt: str, index: int) -> str:
        raise ValueError("user callable broke")

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_app(backend)) as http:
            first = await http.post(CHAT, json=chat())
        async with client(make_app(ScriptedBackend(broken))) as http:
            return first, await http.post(CHAT, json=chat())

    exhausted, crashed = run(go())
    error = assert_openai_error(exhausted, 502, "script_exhausted")
    assert error["type"] == "server_error"
    error = assert_openai_error(crashed, 500)
    assert "user callable broke" in error["message"]


def test_queue_full_gets_429_with_retry_after() -> None:
    gate = Gate()

    async def go() -> list[httpx.Response]:
        async with client(make_app(ScriptedBackend(gate), max_concurrency=1, max_queue=1)) as http:
            running = asyncio.ensure_future(http.post(CHAT, json=chat("chain_of_thought")))
            await gate.started.wait()
            queued = asyncio.ensure_future(http.post(CHAT, json=chat("chain_of_thought")))
            while make_waiting(http) == 0:
                await asyncio.sleep(0.01)
            refused = await http.post(CHAT, json=chat("chain_of_thought"))
            gate.release.set()
            return [refused, await running, await queued]

    def make_waiting(http: httpx.AsyncClient) -> int:
        app = http._transport.app  # type: ignore[attr-defined]
        return int(app.state.runner.limiter.waiting)

    refused, first, second = run(go())
    assert_openai_error(refused, 429, "queue_full")
    assert int(refused.headers["retry-after"]) >= 1
    assert first.status_code == second.status_code == 200


def test_timeout_gets_504_and_frees_the_slot() -> None:
    gate = Gate()

    async def go() -> tuple[httpx.Response, int]:
        app = make_app(ScriptedBackend(gate), timeout_s=0.2)
        async with client(app) as http:
            reply = await http.post(CHAT, json=chat("chain_of_thought"))
            return reply, app.state.runner.limiter.in_flight

    reply, in_flight = run(go())
    assert_openai_error(reply, 504, "timeout")
    assert gate.cancelled == 1 and in_flight == 0


def test_client_disconnect_cancels_the_run() -> None:
    gate = Gate()
    app = make_app(ScriptedBackend(gate))
    sent = run(post_then_disconnect(app, chat("chain_of_thought"), gate))
    assert gate.cancelled == 1 and gate.calls == 1
    assert app.state.runner.limiter.in_flight == 0 and app.state.runner.limiter.waiting == 0
    assert sent[0]["status"] == 499


def test_request_bodies_are_not_retained() -> None:
    filler = "x" * 400_000

    async def go() -> list[int]:
        sizes = []
        async with client(make_app(PlainBackend())) as http:
            for round_ in range(3):
                for _ in range(10):
                    reply = await http.post(CHAT, json=chat(text=f"{filler} a dozen?"))
                    assert reply.status_code == 200
                if round_ == 0:
                    tracemalloc.start()
                sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        return sizes

    sizes = run(go())
    assert sizes[2] - sizes[1] < 2_000_000, sizes  # 10 more requests of 400 kB keep nothing


def test_the_pools_of_one_server_share_one_decode_thread() -> None:
    make = default_pool_factory(None)
    default, aliased = make(None), make("smollm2")
    assert default is not aliased and default.decode_thread is aliased.decode_thread
    assert default_pool_factory(None)(None).decode_thread is not default.decode_thread  # another server


def test_a_recipe_whose_inputs_are_all_given_in_extra_body_is_served_whatever_their_types(tmp_path: Path) -> None:
    (tmp_path / "lists.sf").write_text(
        "recipe lists(xs: list[int], names: list[str]) -> answer {\n  return len(xs) + len(names)\n}\n")

    async def go() -> httpx.Response:
        async with client(make_app(path=tmp_path)) as http:
            return await http.post(CHAT, json=chat("lists", sfdsl={"inputs": {"xs": [1, 2], "names": ["a"]}}))

    reply = run(go())
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "3"


def test_model_retrieval_by_id() -> None:
    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with client(make_app()) as http:
            return await http.get("/v1/models/self_consistency"), await http.get("/v1/models/nope")

    found, missing = run(go())
    assert found.json()["id"] == "self_consistency" and found.json()["object"] == "model"
    assert_openai_error(missing, 404, "model_not_found")
