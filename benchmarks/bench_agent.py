"""Benchmark: what self-consistent tool calling costs on the embedded engine, `tool_vote` (n = 5) against `agent_step`.

Both recipes run on the default model (SmolLM2-135M unless ``--model``) with the tools ``add(a, b)`` and
``weather(city)`` and one user question, on one ``sfdsl.Runtime`` (the model loads once, before timing).
Each repeat runs each recipe once, alternating, with the repeat's seed; the first (warm-up) pair is not
counted. Prints, per recipe, the median wall time with its spread (min-max) and the generated and prompt
tokens per run, then the ratio of the medians. The 5 samples of `tool_vote` share the prompt's KV cache
and decode as one batch, so on a GPU they should cost little more than one sample.

Run it alone on the machine (timings on a shared CPU are not trustworthy):
``python benchmarks/bench_agent.py --repeats 5``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import sfdsl

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TOOLS = [
    {"type": "function", "function": {"name": "add", "description": "Add two integers a and b.", "parameters": {
        "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}},
    {"type": "function", "function": {"name": "weather", "description": "The current weather in a city.",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "maxLength": 24}}, "required": ["city"]}}},
]
MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 12 plus 30?"}]
RUNS: dict[str, dict[str, Any]] = {
    "agent_step": {"tool_choice": "required", "max_tokens": 48},
    "tool_vote": {"tool_choice": "required", "threshold": 0.0, "n": 5, "max_tokens": 48},
}


def measure(repeats: int, model: str) -> dict[str, list[tuple[float, int, int]]]:
    """(wall s, generated tokens, prompt tokens) of each counted run, per recipe."""
    recipes = {name: sfdsl.load(RECIPES / f"{name}.sf").recipe() for name in RUNS}
    runtime = sfdsl.Runtime(model=model)
    out: dict[str, list[tuple[float, int, int]]] = {name: [] for name in RUNS}
    try:
        for seed in range(repeats + 1):
            for name, recipe in recipes.items():
                started = time.perf_counter()
                result = recipe.run({"messages": MESSAGES, "tools": TOOLS, **RUNS[name]}, seed=seed, runtime=runtime)
                wall = time.perf_counter() - started
                if seed:  # the first pair warms the engine up
                    out[name].append((wall, result.cost.completion_tokens, result.cost.prompt_tokens))
    finally:
        runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    results = measure(args.repeats, args.model)
    medians = {}
    for name, runs in results.items():
        walls = [w for w, _, _ in runs]
        medians[name] = statistics.median(walls)
        generated = statistics.median(g for _, g, _ in runs)
        prompt = statistics.median(p for _, _, p in runs)
        print(f"{name:10s} wall {medians[name]:.3f} s (min {min(walls):.3f}, max {max(walls):.3f}, "
              f"{len(walls)} runs); tokens per run: {generated:.0f} generated, {prompt:.0f} prompt")
    print(f"tool_vote (n=5) / agent_step wall: {medians['tool_vote'] / medians['agent_step']:.2f}x")


if __name__ == "__main__":
    main()
