"""Benchmark: consecutive sync ``Recipe.run`` calls load the model once (the default runtime reuses it).

Runs a 2-token recipe ``--runs`` times on one ``sfdsl.Runtime`` and prints each
run's wall time, then the same runs with a new runtime each time (the model
reloads: what every sync run cost before ``sfdsl.Runtime``). The later runs of the first series
should take a small fraction of the first; the second series shows the load cost.
Run: ``python benchmarks/bench_runtime.py --runs 3``.
"""

from __future__ import annotations

import argparse
import time

import sfdsl

RECIPE = """
recipe echo(q: str) -> answer {
  prompt p = "Say {{ q }}"
  said = generate p (max_tokens: 2)
  return said
}
"""


def timed_runs(runs: int, model: str, *, fresh: bool) -> list[float]:
    """Wall seconds of each run; ``fresh`` gives each run a new runtime (so the model loads again)."""
    recipe = sfdsl.compile(RECIPE).recipe()
    times = []
    runtime = sfdsl.Runtime(model=model)
    for i in range(runs):
        if fresh and i:
            runtime.close()
            runtime = sfdsl.Runtime(model=model)
        started = time.perf_counter()
        recipe.run(q=f"hello {i}", runtime=runtime)
        times.append(time.perf_counter() - started)
    runtime.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    for label, fresh in (("one runtime (model loads once)", False), ("a new runtime per run (reloads)", True)):
        times = timed_runs(args.runs, args.model, fresh=fresh)
        shown = ", ".join(f"{t:.3f}" for t in times)
        ratios = ", ".join(f"{t / times[0]:.2f}" for t in times[1:])
        print(f"{label}: {shown} s; later/first: {ratios}")


if __name__ == "__main__":
    main()
