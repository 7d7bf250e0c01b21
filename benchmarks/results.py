"""Regenerate docs/results.md: every shipped recipe on three generated sets (and a confirmatory follow-up),
measured with ``sfrun eval``.

One command runs what is missing and rewrites the page from whatever has finished:

    python benchmarks/results.py                 # run (resumable), then write docs/results.md
    python benchmarks/results.py --page-only     # only rewrite the page from finished runs

Each (recipe, data set) cell is one ``sfrun eval`` into its own directory under
``--out`` (default ``out/results``); ``sfrun eval`` stores every finished item, so an
interrupted run resumes where it stopped. A cell's ``metrics.json`` is removed
before its run starts and written by ``sfrun eval`` only when the cell is
complete, so the page never shows a stale or partial figure as measured: a cell
without it is shown from the items its current run has stored, marked partial.
Every row is summarised from the cell's stored records, as ``sfrun eval`` does.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


N_ITEMS = 40
SEED = 1


@dataclass(frozen=True)
class DataSet:
    """A generated data set: ``sfrun data make KIND --n N --seed SEED --difficulty LEVELS``, scored with ``metric``;
    run with every shipped recipe, or only with those named in ``recipes``."""

    key: str
    title: str
    kind: str
    levels: str
    metric: str
    n: int = N_ITEMS
    seed: int = SEED
    recipes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """A recipe spec for ``sfrun eval`` and the inputs fixed for the results page."""

    spec: str
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        path, _, name = self.spec.partition(":")
        return name or Path(path).stem


DATASETS = (
    DataSet("arith1", "Arithmetic, difficulty 1 (1–2 steps, operands ≤ 20)", "arithmetic", "1", "numeric"),
    DataSet("arith2", "Arithmetic, difficulty 2 (3 steps, operands ≤ 100)", "arithmetic", "2", "numeric"),
    DataSet("yesno", "Yes/no (comparisons, parity, capitals; difficulties 1–3 mixed)", "yesno", "1,2,3", "exact"),
    # A confirmatory run: the recipes with the best point estimates on arith1, on 200 fresh items (another seed),
    # so the items that picked them are not the items that test them.
    DataSet(
        key="arith1_confirm",
        title="Follow-up: arithmetic, difficulty 1, on 200 fresh items (seed 2), the recipes that led on the 40",
        kind="arithmetic",
        levels="1",
        metric="numeric",
        n=200,
        seed=2,
        recipes=("chain_of_thought", "step_correction", "untargeted_refine", "self_refine"),  # cheapest first
    ),
)

SHORT = {"max_tokens": "128"}  # new tokens per answer: 128 instead of 256, so the page can be measured on a CPU

#: Cheapest first, so a time-boxed run measures as many recipes as it can; chain_of_thought is the baseline.
RECIPES = (
    Recipe("recipes/chain_of_thought.sf", SHORT),
    Recipe("recipes/confidence_critique.sf", SHORT),
    Recipe("recipes/self_judge.sf", SHORT),
    Recipe("recipes/p_true.sf", SHORT),
    Recipe("recipes/best_of_n.sf", SHORT),
    Recipe("recipes/self_consistency.sf", SHORT),
    Recipe("recipes/self_consistency.sf:self_consistency_weighted", SHORT),
    Recipe("recipes/untargeted_refine.sf", SHORT),
    Recipe("recipes/universal_self_consistency.sf", SHORT),
    Recipe("recipes/best_of_n.sf:best_of_n_judge", SHORT),
    Recipe("recipes/iterative_deepening.sf", {"max_total": "128"}),
    Recipe("recipes/self_familiarity.sf", SHORT),
    Recipe("recipes/self_refine.sf", SHORT),
    Recipe("recipes/self_check.sf", SHORT),
    Recipe("recipes/semantic_entropy.sf", SHORT),
    Recipe("recipes/step_correction.sf"),
    Recipe("recipes/tree_of_thoughts.sf"),
    Recipe("recipes/mcts.sf"),
)


def shipped() -> list[Recipe]:
    """The recipes of ``RECIPES`` whose file exists (semantic_entropy only once it is shipped)."""
    return [r for r in RECIPES if (ROOT / r.spec.partition(":")[0]).exists()]


def recipes_for(ds: DataSet) -> list[Recipe]:
    """The shipped recipes that run on ``ds``: those it names, in its order, or all of them in ``RECIPES`` order."""
    by_label = {r.label: r for r in shipped()}
    return [by_label[label] for label in ds.recipes if label in by_label] if ds.recipes else list(by_label.values())


def data_command(ds: DataSet, path: Path) -> list[str]:
    return ["sfrun", "data", "make", ds.kind, "--n", str(ds.n), "--seed", str(ds.seed),
            "--difficulty", ds.levels, "--output", str(path)]  # fmt: skip


def eval_command(recipe: Recipe, ds: DataSet, data: Path, out: Path) -> list[str]:
    cmd = ["sfrun", "eval", recipe.spec, "--data", str(data), "--metric", ds.metric, "--seed", str(SEED),
           "--out", str(out)]  # fmt: skip
    for key, value in recipe.inputs.items():
        cmd += ["-i", f"{key}={value}"]
    return cmd


def cell_dir(out: Path, recipe: Recipe, ds: DataSet) -> Path:
    return out / ds.key / recipe.label


def run_all(out: Path, log: Any) -> None:
    """Make the data sets, then run every missing cell: every recipe (cheapest first) on the first set, then
    on the next, so a run stopped early still has a figure for every method."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    for ds in DATASETS:
        path = out / "data" / f"{ds.key}.jsonl"
        if not path.exists():
            subprocess.run(data_command(ds, path), cwd=ROOT, check=True)
    for ds in DATASETS:
        for recipe in recipes_for(ds):
            cell = cell_dir(out, recipe, ds)
            cell.mkdir(parents=True, exist_ok=True)
            (cell / "metrics.json").unlink(missing_ok=True)
            cmd = eval_command(recipe, ds, out / "data" / f"{ds.key}.jsonl", cell)
            started = time.monotonic()
            print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(cmd)}", file=log, flush=True)
            done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, check=False)
            print(f"  exit {done.returncode} after {time.monotonic() - started:.0f} s", file=log, flush=True)


# ---------------------------------------------------------------- the page


def cell_records(cell: Path) -> list[Any]:
    """The stored records of a cell's latest run (the one being written, or the finished one); [] when none."""
    from sfdsl.eval.store import STORE_NAME, ResultStore

    path = cell / STORE_NAME
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        latest = con.execute("SELECT run_key FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
    if latest is None:
        return []
    with ResultStore(path) as store:
        return list(store.records(latest[0]))


def num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def pct(value: Any) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.0%}"


def aurc_text(selective: dict[str, Any]) -> str:
    """``0.574 (0.675)``: the AURC, then the AURC of a score that ranks nothing (the error rate)."""
    if not selective:
        return "–"
    return f"{num(selective['aurc'])} ({num(selective['aurc_random'])})"


def paired_text(pair: dict[str, Any] | None) -> str:
    """``+10.0 [+0.0, +22.5], 5/1 (p=0.22)``: a paired gain in points over the shared items; "–" for the baseline."""
    from sfdsl.eval.table import points, wins_text

    if pair is None:
        return "–"
    low, high = pair["gain_ci"]
    return f"{points(pair['gain'])} [{points(low)}, {points(high)}], {wins_text(pair)}"


def table(out: Path, ds: DataSet) -> list[str]:
    """The markdown table of one data set: finished rows, partial rows (marked), then rows with nothing stored.

    The gain column pairs each recipe with the first row (the chain_of_thought baseline) item by item.
    """
    from sfdsl.eval.metrics import compare, summarize
    from sfdsl.eval.paired import paired_gains

    shown: list[tuple[str, dict[str, Any]]] = []
    records: dict[str, list[Any]] = {}
    missing: list[str] = []
    for recipe in recipes_for(ds):
        cell = cell_dir(out, recipe, ds)
        stored = cell_records(cell)
        if not stored:
            missing.append(f"| {recipe.label} | not measured yet (0/{ds.n} items) |" + " |" * 8)
            continue
        label = recipe.label
        if not (cell / "metrics.json").exists():  # sfrun eval writes it when the cell is complete
            label += f" **(partial: {len({r.item_key for r in stored})}/{ds.n} items)**"
        shown.append((label, summarize(stored, seed=SEED)))  # what sfrun eval --seed SEED reports
        records[label] = stored
    lines = [
        "| recipe | accuracy [95% CI] | gain vs baseline, paired [95% CI], won/lost (p) | tokens/item | acc/1k tok"
        " | coverage | ECE | Brier | AURC (random order) | CL / CS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    pairs = paired_gains(records, [label for label, _ in shown], seed=SEED)
    for (label, s), row in zip(shown, compare(shown), strict=True):
        sel, cal, two = s.get("selective", {}), s.get("calibration", {}), s.get("two_turn")
        ci = s["accuracy_ci"]
        cl_cs = f"{pct(two['cl'])} / {pct(two['cs'])}" if two else "–"
        lines.append(
            f"| {label} | {pct(s['accuracy'])} [{pct(ci[0])}, {pct(ci[1])}] | {paired_text(pairs.get(label))}"
            f" | {num(row['tokens_per_item'], 0)}"
            f" | {num(row['acc_per_1k_tokens'], 2)} | {pct(sel.get('coverage'))} | {num(cal.get('ece'))}"
            f" | {num(cal.get('brier'))} | {aurc_text(sel)}"
            f" | {cl_cs} |"
        )
    return lines + missing


def write_page(out: Path, page: Path) -> None:
    parts = [PAGE_HEAD.format(n=N_ITEMS, seed=SEED, when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))]
    for ds in DATASETS:
        parts.append(f"\n## {ds.title}\n\n`{shlex.join(data_command(ds, Path(f'{ds.key}.jsonl')))}`,"
                     f" metric `{ds.metric}`.\n\n")  # fmt: skip
        parts.append("\n".join(table(out, ds)) + "\n")
    parts.append("\n## Commands\n\nEach cell is one `sfrun eval` run:\n\n```bash\n")
    for recipe in shipped():
        ds = DATASETS[0]
        parts.append(shlex.join(eval_command(recipe, ds, Path(f"{ds.key}.jsonl"), Path(f"out/{recipe.label}"))) + "\n")
    parts.append("```\n\nand the same with `arith2.jsonl`, `yesno.jsonl --metric exact`, and, for the follow-up's"
                 " four recipes, `arith1_confirm.jsonl`.\n")  # fmt: skip
    reading = page.with_name("results_reading.md")
    if reading.exists():
        parts.append("\n" + reading.read_text(encoding="utf-8"))
    page.write_text("".join(parts), encoding="utf-8")


PAGE_HEAD = """# Results: every recipe on the default model

<!-- generated by `python benchmarks/results.py`; edit docs/results_reading.md, not this file -->

SmolLM2-135M-Instruct (Q4_1, the default model) on {n} generated items per data set
(data seed {seed}; the follow-up: 200 items, data seed 2), one run per item (`--samples 1`,
sampling seed {seed}), on a 2-core CPU without a GPU. Answers
get at most 128 new tokens (`-i max_tokens=128`; `max_total=128` for iterative_deepening;
the step-wise searches keep their 64-token steps). Written {when}.

Columns: accuracy with its percentile-bootstrap 95% CI over items; the gain over the
chain_of_thought baseline in points, judged item by item on the same items (paired bootstrap
95% CI; items won/lost against the baseline; exact sign-test p-value); tokens/item is prompt +
generated tokens; acc/1k tok is accuracy per 1,000 tokens; coverage is the share of items
answered (recipes that abstain); ECE (10 right-closed bins) and Brier are on the recipe's
`score` when it is a probability; AURC is on `score` (ties broken at random in expectation),
with the AURC of a random order in brackets (the error rate: a score ranks right answers first
only below it);
CL / CS are the Confidence-vs-Critique rates of keeping a right first answer and fixing a
wrong one (two-turn recipes); "–" where a figure does not apply. Definitions:
[metrics.md](metrics.md). A row marked **partial** summarises only the items its run had
finished when this page was written (its CI is over those items); a row "not measured yet"
had none. Rerun the command to resume them: finished items are kept.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "out" / "results"), help="results directory")
    parser.add_argument("--page", default=str(ROOT / "docs" / "results.md"), help="page to write")
    parser.add_argument("--page-only", action="store_true", help="do not run anything; rewrite the page")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not args.page_only:
        out.mkdir(parents=True, exist_ok=True)
        with (out / "run.log").open("a", encoding="utf-8") as log:
            run_all(out, log)
    write_page(out, Path(args.page))
    return 0


if __name__ == "__main__":
    sys.exit(main())
