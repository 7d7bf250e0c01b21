"""Check-time benchmark: `sfrun check` on flat recipes of N independent `generate` steps.

Run: python benchmarks/bench_check.py [--steps 100 1000 10000]

The cost bound's "sequences at once" is a maximum-weight antichain of the plan, found by one max-flow
computation (sfdsl/cost.py), so checking grows about linearly with the number of steps. Prints, for each size,
the in-process compile time (parse, check, plan, bound) and the wall time of `sfrun check` as a subprocess
(Python start-up included). Exits 1 when the 2,000-step recipe takes 2 s or more in process.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sfdsl.compiler import compile_text

#: The issue's target: a flat recipe of 2,000 steps checks in under 2 s.
TARGET = (2_000, 2.0)


def flat(steps: int) -> str:
    """A recipe of ``steps`` independent `generate` lines (the shape that was exponential before)."""
    body = "\n".join(f"  a{i} = generate p" for i in range(steps))
    return f'recipe flat(question: str) {{\n  prompt p = "Q: {{{{ question }}}}"\n{body}\n  return a0\n}}\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 1_000, 2_000, 10_000])
    sizes = parser.parse_args().steps
    compile_text(flat(2))  # load the grammar once
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for steps in sizes:
            text = flat(steps)
            start, cpu = time.perf_counter(), time.process_time()
            bound = compile_text(text).bounds["flat"]
            seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
            path = Path(tmp) / f"flat{steps}.sf"
            path.write_text(text, encoding="utf-8")
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "sfdsl.cli", "check", str(path)], capture_output=True,
                                  text=True, check=False)
            cli_s = time.perf_counter() - start
            print(f"{steps:>6} steps: compile {seconds:.2f} s ({cpu_s:.2f} s CPU), `sfrun check` {cli_s:.2f} s "
                  f"(exit {done.returncode}); {bound}")
            if steps == TARGET[0]:
                failed |= seconds >= TARGET[1]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
