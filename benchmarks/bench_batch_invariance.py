"""Benchmark: the throughput cost of the engine's batch-invariant schedule (issue 21, item 15).

Workload: what ``sfrun eval --concurrency K`` does. ``self_consistency`` (n samples,
temperature 1) over generated arithmetic items, K items in flight, on one engine.
It runs twice on the same model file: with ``batch_invariant`` on (the default: no KV
cell freed while sequences run, admission by worst-case growth, drains) and off (the
optimistic schedule: admission by actual use, preemption). Each line gives the wall time,
the tokens generated, tokens/s, and the engine's drains and preemptions. The last
line counts the items the optimistic schedule sampled otherwise than the invariant
one, which samples each item as a run alone would (tests/test_engine_batch_invariance.py).

Run: ``python benchmarks/bench_batch_invariance.py`` (defaults: 24 items, K=8, n=5,
max_tokens 64, n_ctx 4096, 1 thread). Figures from a busy machine are provisional.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import structlog

import sfdsl
from sfdsl.eval.generate import arithmetic
from sfdsl.runtime.backends.llama import LlamaBackend
from sfdsl.runtime.pool import BackendPool

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


async def eval_like(params: dict[str, Any], args: argparse.Namespace) -> tuple[float, int, dict[str, list[str]], Any]:
    """Run the workload on a fresh engine; (seconds, tokens, sample texts per question, engine)."""
    recipe = sfdsl.load(RECIPES / "self_consistency.sf").recipe("self_consistency")
    backend = LlamaBackend.from_params(params)
    pool = BackendPool(backend=backend)
    questions = [row["question"] for row in arithmetic(args.items, seed=0)]
    inputs = {"n": args.n, "temperature": 1.0, "max_tokens": args.max_tokens}
    texts: dict[str, list[str]] = {}
    tokens = 0
    gate = asyncio.Semaphore(args.concurrency)

    async def one(question: str) -> None:
        nonlocal tokens
        async with gate:
            result = await recipe.arun({"question": question, **inputs}, backend=pool, seed=0)
        [step] = [s for s in result.steps if s.kind == "generate"]
        texts[question] = [s if isinstance(s, str) else s["text"] for s in step.output]
        tokens += result.cost.completion_tokens

    try:
        await recipe.arun({"question": "What is 1 + 1?", **inputs}, backend=pool, seed=0)  # warm-up
        start = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        return time.perf_counter() - start, tokens, texts, backend.engine
    finally:
        await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--concurrency", "-k", type=int, default=8)
    parser.add_argument("--n", type=int, default=5, help="samples per item")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    base = {"model": "default", "n_ctx": args.n_ctx, "n_threads": args.threads}
    print(f"self_consistency x {args.items} items, K={args.concurrency}, n={args.n}, "
          f"max_tokens={args.max_tokens}, n_ctx={args.n_ctx}, threads={args.threads}")
    runs = {}
    for invariant in (True, False):
        seconds, tokens, texts, engine = asyncio.run(eval_like({**base, "batch_invariant": invariant}, args))
        runs[invariant] = texts
        print(f"  batch_invariant={invariant!s:5}  {seconds:7.1f} s  {tokens:6d} tokens  {tokens / seconds:7.1f} tok/s"
              f"  steps {engine.steps}  drains {engine.drains}  preemptions {engine.preemptions}")
    differ = sum(runs[True][q] != runs[False].get(q) for q in runs[True])
    print(f"  items sampled otherwise than alone with batch_invariant=False: {differ} of {len(runs[True])}")


if __name__ == "__main__":
    main()
