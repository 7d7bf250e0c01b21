"""Benchmark: what self-consistent tool calling costs on the embedded engine, `tool_vote` (n = 5) against `agent_step`.

Both recipes run on the default model (SmolLM2-135M unless ``--model``) with the tools ``add(a, b)`` and
``weather(city)`` and one user question, on one ``sfdsl.Runtime`` (the model loads once, before timing).
Each repeat runs each recipe once, alternating, with the repeat's seed; the first (warm-up) pair is not
counted. Prints, per recipe, the median wall time with its spread (min-max) and the generated and prompt
tokens per run, then the ratio of the medians. The 5 samples of `tool_vote` share the prompt's KV cache
and decode as one batch, so on a GPU they should cost little more than one sample.

``--compare-grammar`` runs each recipe twice per repeat on the same runtime: with the grammar-first
llama.cpp chain (``SFDSL_EAGER_GRAMMAR=1``, the old order) and with the lazy grammar sampler (the
default: check the drawn token, mask the whole vocabulary only when it is rejected). It prints the
eager / lazy ratio per recipe, and how many lazy tokens needed the full-vocabulary grammar pass.

Run it alone on the machine (timings on a shared CPU are not trustworthy):
``python benchmarks/bench_agent.py --repeats 5 [--compare-grammar]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import sfdsl
from sfdsl.runtime.sampling import EAGER_GRAMMAR_ENV

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


class PassCounter(logging.Handler):
    """Adds up the ``grammar_sampling_finished`` debug events of the lazy grammar sampler."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tokens = self.full_passes = 0

    def emit(self, record: logging.LogRecord) -> None:
        event = record.msg
        if isinstance(event, dict) and event.get("event") == "grammar_sampling_finished":
            self.tokens += event["tokens"]
            self.full_passes += event["full_passes"]


def measure(repeats: int, model: str, modes: list[str]) -> dict[tuple[str, str], list[tuple[float, int, int]]]:
    """(wall s, generated tokens, prompt tokens) of each counted run, per (recipe, grammar order)."""
    recipes = {name: sfdsl.load(RECIPES / f"{name}.sf").recipe() for name in RUNS}
    runtime = sfdsl.Runtime(model=model)
    out: dict[tuple[str, str], list[tuple[float, int, int]]] = {(n, m): [] for n in RUNS for m in modes}
    try:
        for seed in range(repeats + 1):
            for name, recipe in recipes.items():
                for mode in modes:
                    os.environ[EAGER_GRAMMAR_ENV] = "1" if mode == "eager" else "0"
                    started = time.perf_counter()
                    result = recipe.run({"messages": MESSAGES, "tools": TOOLS, **RUNS[name]}, seed=seed,
                                        runtime=runtime)
                    wall = time.perf_counter() - started
                    if seed:  # the first round warms the engine up
                        out[(name, mode)].append((wall, result.cost.completion_tokens, result.cost.prompt_tokens))
    finally:
        os.environ.pop(EAGER_GRAMMAR_ENV, None)
        runtime.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="default")
    parser.add_argument("--compare-grammar", action="store_true",
                        help="time the grammar-first (eager) and the lazy grammar sampler in the same run")
    args = parser.parse_args()
    modes = ["eager", "lazy"] if args.compare_grammar else ["lazy"]
    counter = PassCounter()
    sampling_log = logging.getLogger("sfdsl.runtime.sampling")
    sampling_log.addHandler(counter)
    sampling_log.setLevel(logging.DEBUG)
    results = measure(args.repeats, args.model, modes)
    medians = {}
    for (name, mode), runs in results.items():
        walls = [w for w, _, _ in runs]
        medians[(name, mode)] = statistics.median(walls)
        generated = statistics.median(g for _, g, _ in runs)
        prompt = statistics.median(p for _, _, p in runs)
        label = f"{name} ({mode})" if args.compare_grammar else name
        print(f"{label:18s} wall {medians[(name, mode)]:.3f} s (min {min(walls):.3f}, max {max(walls):.3f}, "
              f"{len(walls)} runs); tokens per run: {generated:.0f} generated, {prompt:.0f} prompt")
    for mode in modes:
        ratio = medians[("tool_vote", mode)] / medians[("agent_step", mode)]
        print(f"tool_vote (n=5) / agent_step wall ({mode} grammar): {ratio:.2f}x")
    if args.compare_grammar:
        for name in RUNS:
            print(f"{name}: eager / lazy grammar wall: {medians[(name, 'eager')] / medians[(name, 'lazy')]:.2f}x")
    print(f"lazy grammar: {counter.full_passes} of {counter.tokens} sampled tokens (warm-up included) "
          "needed the full-vocabulary pass")


if __name__ == "__main__":
    main()
