"""Recipes served as OpenAI-compatible models: a real HTTP round trip with the OpenAI backend as client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sfdsl
from sfdsl import ScriptedBackend
from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt
from sfdsl.runtime.backends.openai_http import OpenAIBackend
from sfdsl.runtime.backends.recipe import RecipeBackend
from sfdsl.runtime.openai_server import OpenAIServer
from sfdsl.runtime.pool import BackendPool

OK = Path(__file__).parent / "fixtures" / "ok"


def test_recipe_answers_chat_requests_over_http() -> None:
    recipe = sfdsl.load(OK / "self_consistency.sf").recipe()
    model = ScriptedBackend(lambda prompt, i: "The answer is 12" if "dozen" in prompt else "The answer is 3")
    backend = RecipeBackend(recipe, BackendPool(backend=model), inputs={"n": 3})
    with OpenAIServer(backend, model_name=recipe.name) as server:
        client = OpenAIBackend(base_url=server.base_url, model=recipe.name)

        async def ask() -> list[str]:
            prompt = Prompt(messages=(Message(role="system", content="ignored"),
                                      Message(role="user", content="How many eggs in a dozen?")))
            completions = await client.generate(GenerateRequest(prompt=prompt, n=2, seed=5))
            await client.aclose()
            return [c.text for c in completions]

        assert asyncio.run(ask()) == ["12", "12"]
    seeds = sorted({r.seed for r in model.requests})
    assert len(model.requests) == 2 and len(seeds) == 2  # two recipe runs, seeds 5 and 6 derive different calls
    assert all(r.n == 3 for r in model.requests)  # the fixed input reached the recipe


def test_sfrun_serve_command(tmp_path: Path) -> None:
    import json
    import re
    import subprocess
    import sys

    import httpx

    script = tmp_path / "script.json"
    script.write_text(json.dumps(["The answer is 4"] * 5))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sfdsl.cli", "serve", str(OK / "self_consistency.sf"), "--port", "0",
         "--backend", f"scripted:{script}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://\S+/v1)", line)
        assert match, line
        models = httpx.get(f"{match.group(1)}/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["self_consistency"]
        reply = httpx.post(f"{match.group(1)}/chat/completions", timeout=10, json={
            "model": "self_consistency", "messages": [{"role": "user", "content": "2+2?"}]}).json()
        assert reply["choices"][0]["message"]["content"] == "4"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
