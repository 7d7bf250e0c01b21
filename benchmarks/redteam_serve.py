"""Red-team battery for `sfrun serve` (issue 21): one heavy request must not freeze or exhaust the server.

Starts `sfrun serve` on 127.0.0.1 with the scripted backend (instant replies: the worst case for the
event loop, since no step ever waits on a model) and, for each scenario, sends one heavy request
while probing ``/health`` every 50 ms. It reports, per scenario: the status and code of the heavy
request, how long it took past the server's ``--timeout`` (target: under 1 s), the slowest /health
answer (target: under 100 ms), and the server's RSS before and after (target: under 1 GB).

Scenarios (all bounded, loopback only):

* ``over_cap``: the issue's reproductions under the default caps (mcts with 10M simulations,
  tree_of_thoughts with huge depth/k/beam, self_check with k = 1M): each must be a 400 at once;
* ``timeout``: a run that would take minutes (a vote over 10M bodies, caps raised, the default
  run-memory ceiling) must get its 504 within 1 s of ``--timeout`` (or stop at the ceiling first);
* ``memory``: the same run under the default run-memory ceiling (64 MB) must stop with a located error;
* ``largest_admitted``: self_consistency at the largest ``n`` the server admits (32).

Run: ``python benchmarks/redteam_serve.py`` (``--timeout`` to change the server's timeout).
Timings from a machine shared with other work are not trustworthy; say so when quoting them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
LONG = (RECIPES.parent / "tests" / "fixtures" / "serve" / "long_vote.sf").read_text()


@contextmanager
def serve(path: Path, script: Path, *args: str) -> Iterator[tuple[str, int]]:
    """`sfrun serve PATH --backend scripted:SCRIPT ARGS` on a free loopback port; yields (base URL, pid)."""
    proc = subprocess.Popen([sys.executable, "-m", "sfdsl.cli", "serve", str(path), "--port", "0", "--no-cache",
                             "--backend", f"scripted:{script}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        match = re.search(r"at (http://\S+)/v1", proc.stdout.readline())
        if match is None:
            raise SystemExit("sfrun serve did not start")
        yield match.group(1), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def heavy(url: str, pid: int, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """One heavy request with /health probed every 50 ms; the reply, its time and the slowest probe."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        await http.get("/health")
        before = rss_mb(pid)
        latencies: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                await http.get("/health")
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        prober = asyncio.ensure_future(probe())
        started = time.perf_counter()
        reply = await http.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            "sfdsl": {"inputs": inputs}})
        elapsed = time.perf_counter() - started
        done.set()
        await prober
        await asyncio.sleep(0.5)
        error = reply.json().get("error") or {}
        return {"model": model, "inputs": inputs, "status": reply.status_code, "code": error.get("code"),
                "seconds": round(elapsed, 3), "health_p50_ms": round(1000 * statistics.median(latencies), 1),
                "health_max_ms": round(1000 * max(latencies), 1), "probes": len(latencies),
                "rss_before_mb": round(before, 1), "rss_after_mb": round(rss_mb(pid), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="the server's --timeout in seconds (3)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(json.dumps({"": "The answer is 4"}))
        (Path(tmp) / "long.sf").write_text(LONG)
        with serve(RECIPES, script, "--timeout", str(args.timeout)) as (url, pid):
            for model, inputs in [("mcts", {"simulations": 10_000_000}),
                                  ("tree_of_thoughts", {"depth": 1000, "k": 1000, "beam": 1000}),
                                  ("self_check", {"k": 1_000_000}),
                                  ("self_consistency", {"n": 32})]:
                rows.append({"scenario": "over_cap" if inputs.get("simulations", 0) > 1000 or "depth" in inputs
                             or inputs.get("k", 0) > 1000 else "largest_admitted",
                             **asyncio.run(heavy(url, pid, model, inputs))})
        raised = ("--max-request-calls", "100000000", "--max-request-tokens", "10000000000",
                  "--max-request-parallel", "100000000")
        with serve(Path(tmp) / "long.sf", script, "--timeout", str(args.timeout), *raised) as (url, pid):
            row = asyncio.run(heavy(url, pid, "long", {"k": 10_000_000}))
            rows.append({"scenario": "timeout", **row, "past_timeout_s": round(row["seconds"] - args.timeout, 3)})
        with serve(Path(tmp) / "long.sf", script, "--timeout", "60", *raised) as (url, pid):  # the default ceiling
            rows.append({"scenario": "memory", **asyncio.run(heavy(url, pid, "long", {"k": 10_000_000}))})
    for row in rows:
        print(json.dumps(row))
    worst = max(r["health_max_ms"] for r in rows)
    late = [r["past_timeout_s"] for r in rows if "past_timeout_s" in r]
    print(f"worst /health: {worst} ms (target < 100); 504 past the timeout: {late} s (target < 1); "
          f"largest RSS: {max(r['rss_after_mb'] for r in rows)} MB (target < 1024)")


if __name__ == "__main__":
    main()
