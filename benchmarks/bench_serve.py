"""Benchmark: `sfrun serve` under concurrent clients, and under load without connection resets.

Part 1 (the embedded engine, default model): ``--requests`` chat completions of
``--recipe`` (``--max-tokens`` tokens each) sent one at a time, then the same
requests from ``--clients`` concurrent clients. Concurrent runs share one llama
engine, which batches their sequences, so throughput should rise with K. It
prints requests/s and p50/p99 latency of both and the throughput ratio.

Part 2 (the scripted backend): ``--load`` requests at concurrency
``--load-concurrency``, each on a fresh TCP connection; it counts connection
resets and other transport errors (the issue's target: 0 of 2,000 at 64).

Both parts start `sfrun serve` in a subprocess on a free port, with the on-disk cache off.
Run: ``python benchmarks/bench_serve.py`` (``--skip-engine`` or ``--skip-load`` for one part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@contextmanager
def serve(*args: str) -> Iterator[str]:
    """`sfrun serve ARGS --port 0` in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "sfdsl.cli", "serve", *args, "--port", "0", "--no-cache"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        match = re.search(r"at (http://\S+)/v1", proc.stdout.readline())
        if match is None:
            raise SystemExit("sfrun serve did not start")
        yield match.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def payload(recipe: str, i: int, max_tokens: int) -> dict[str, object]:
    return {"model": recipe, "max_tokens": max_tokens, "seed": i,
            "messages": [{"role": "user", "content": f"What is {i} plus {i + 3}? Answer briefly."}]}


async def timed_batch(url: str, payloads: list[dict[str, object]], concurrency: int) -> tuple[float, list[float]]:
    """Send every payload with at most ``concurrency`` in flight; wall seconds and per-request latencies."""
    latencies: list[float] = []
    pending = list(payloads)
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:

        async def worker() -> None:
            while pending:
                body = pending.pop(0)
                started = time.perf_counter()
                reply = await http.post("/v1/chat/completions", json=body)
                reply.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_part(args: argparse.Namespace) -> None:
    with serve(str(RECIPES / f"{args.recipe}.sf"), "--max-concurrency", str(args.clients)) as url:
        asyncio.run(timed_batch(url, [payload(args.recipe, -1, args.max_tokens)], 1))  # load the model
        bodies = [payload(args.recipe, i, args.max_tokens) for i in range(args.requests)]
        rows = []
        for label, concurrency in (("sequential", 1), (f"{args.clients} clients", args.clients)):
            wall, latencies = asyncio.run(timed_batch(url, bodies, concurrency))
            rows.append((label, len(bodies) / wall, percentile(latencies, 0.5), percentile(latencies, 0.99)))
    print(f"engine: {args.requests} requests of {args.recipe} (max_tokens {args.max_tokens}), default model")
    for label, rate, p50, p99 in rows:
        print(f"  {label:<12} {rate:6.2f} req/s   p50 {p50:6.2f} s   p99 {p99:6.2f} s")
    print(f"  throughput ratio ({args.clients} clients / sequential): {rows[1][1] / rows[0][1]:.2f}x")


def load_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps({"": "The answer is 4"}))
        with serve(str(RECIPES), "--backend", f"scripted:{script}", "--max-queue", str(args.load)) as url:
            errors: dict[str, int] = {}
            statuses: dict[int, int] = {}
            latencies: list[float] = []

            async def go() -> float:
                limits = httpx.Limits(max_connections=args.load_concurrency, max_keepalive_connections=0)
                async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
                    todo = list(range(args.load))

                    async def worker() -> None:
                        while todo:
                            i = todo.pop()
                            started = time.perf_counter()
                            try:
                                reply = await http.post("/v1/chat/completions", json=payload("chain_of_thought", i, 8))
                                statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                                latencies.append(time.perf_counter() - started)
                            except httpx.TransportError as exc:
                                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

                    started = time.perf_counter()
                    await asyncio.gather(*(worker() for _ in range(args.load_concurrency)))
                    return time.perf_counter() - started

            wall = asyncio.run(go())
    print(f"load: {args.load} requests at concurrency {args.load_concurrency}, a fresh connection each, "
          "scripted backend")
    print(f"  statuses {statuses}; transport errors (resets included) {errors or 0}")
    print(f"  {args.load / wall:.0f} req/s, p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="chain_of_thought")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--load", type=int, default=2000)
    parser.add_argument("--load-concurrency", type=int, default=64)
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    if not args.skip_engine:
        engine_part(args)
    if not args.skip_load:
        load_part(args)


if __name__ == "__main__":
    main()
