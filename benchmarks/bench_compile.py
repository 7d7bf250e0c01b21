"""Compile-time benchmark: check time must grow linearly with the input, deep input must fail fast.

Run: python benchmarks/bench_compile.py [--size BYTES]

Prints the time to check (parse, check, plan, bound) a ~600 kB file of valid recipes (every recipe of recipes/
repeated under fresh names, under the 50,000-token limit), `else if` chains of growing length, the deep inputs
of issue 14, each of which must end in "ok" or a located SF113 error within seconds, and the oversized inputs of
issue 21, each of which must end in a located limit error (SF117-SF120, SF601) within 5 s and 500 MB.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import re
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sfdsl.compiler import compile_text
from sfdsl.errors import CompileError

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
#: Seconds allowed for each case (generous: the machine may be shared).
TARGET_S = {"big file": 30.0, "deep": 5.0, "oversized": 5.0}


def big_source(size: int) -> str:
    """Valid recipes, renamed so they do not clash, until the text is ``size`` bytes long.

    Files that import others are left out: their imports would not resolve from one concatenated text.
    """
    texts = [p.read_text(encoding="utf-8") for p in sorted(RECIPES.glob("*.sf"))]
    texts = [t for t in texts if not re.search(r"^\s*import\s", t, re.MULTILINE)]
    parts: list[str] = []
    total, copy = 0, 0
    while total < size:
        for text in texts:
            text = re.sub(r"\b(recipe|call) (\w+)", lambda m, c=copy: f"{m.group(1)} {m.group(2)}_{c}", text)
            parts.append(text)
            total += len(text)
        copy += 1
    return "\n".join(parts)


def recipe(body: str, answer: str) -> str:
    return "recipe r(q: str) {\n" + body + f"\n  return answer: {answer}\n}}\n"


def else_if_chain(branches: int) -> str:
    chain = '  if q == "0" { y = 0 }' + "".join(f' else if q == "{i}" {{ y = {i} }}' for i in range(1, branches))
    return recipe(chain + " else { y = -1 }", "y")


DEEP: dict[str, Callable[[], str]] = {
    "500-term sum": lambda: recipe("  x = " + "+".join(["1"] * 500), "x"),
    "500 nested lists": lambda: recipe("  x = " + "[" * 500 + "1" + "]" * 500, "x"),
    "300 nested dicts": lambda: recipe("  x = " + '{"a": ' * 300 + "1" + "}" * 300, "x"),
    "300 nested ifs": lambda: recipe("  y = 1\n" + '  if q == "a" {\n' * 300 + "  z = 1\n" + "  }\n" * 300, "y"),
    "500 nested parens": lambda: recipe("  x = " + "(" * 500 + "1" + ")" * 500, "x"),
    "1000-branch else-if chain": lambda: else_if_chain(1000),
    "100,000 open brackets": lambda: recipe("  x = " + "[" * 90_000, "x"),
}

OVERSIZED: dict[str, Callable[[], str]] = {
    "5 MB choices list": lambda: recipe('  prompt p = "x"\n  c = generate choice p (options: ['
                                        + ", ".join(f'"option{i:06d}"' for i in range(400_000)) + "])", "c"),
    "list of 1M ints": lambda: recipe("  x = [" + ",".join("1" * 1_000_000) + "]", "x"),
    "1M '}' on one line": lambda: recipe("}" * 1_000_000, "q"),
    "500,000 lines of '}'": lambda: "}\n" * 500_000,
    "list of 10,001 items": lambda: recipe("  x = [" + ",".join("1" * 10_001) + "]", "x"),
    "{% for %} nested 150 deep": lambda: recipe('  prompt p = "' + "{% for x in q %}" * 150 + "{% endfor %}" * 150
                                                + '"\n  a = generate p', "a"),
}


def check(text: str) -> tuple[float, str]:
    """Wall seconds to check ``text``, and "ok" or its error codes; CPU seconds are shown with the outcome."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        compile_text(text, file="bench.sf")
        outcome = "ok"
    except CompileError as exc:
        outcome = " ".join(sorted({d.code for d in exc.diagnostics if d.is_error}))
    return time.perf_counter() - start, f"{outcome}, {time.process_time() - cpu:.2f} s CPU"


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--size", type=int, default=600_000, help="bytes of recipes in the big file")
    size = args.parse_args().size
    check("recipe warm() { return 1 }")  # load the grammar once
    failed = False
    seconds, outcome = check(big_source(size))
    print(f"{size / 1e6:.1f} MB file of valid recipes: {seconds:.2f} s ({outcome})")
    failed |= seconds > TARGET_S["big file"] or not outcome.startswith("ok,")
    for branches in (10, 20, 40, 70):
        seconds, outcome = check(else_if_chain(branches))
        print(f"else-if chain, {branches} branches: {seconds:.3f} s ({outcome})")
    for name, make in DEEP.items():
        seconds, outcome = check(make())
        print(f"{name}: {seconds:.3f} s ({outcome})")
        failed |= seconds > TARGET_S["deep"] or outcome.split(",")[0] not in ("ok", "SF113")
    for name, make in OVERSIZED.items():
        text = make()
        seconds, outcome = check(text)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name} ({len(text) / 1e6:.1f} MB): {seconds:.3f} s ({outcome}), peak RSS so far {peak:.0f} MB")
        codes = outcome.split(",")[0].split()
        failed |= seconds > TARGET_S["oversized"] or peak > 500 or not codes or not all(
            c in ("SF117", "SF118", "SF119", "SF120", "SF601", "SF114") for c in codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
