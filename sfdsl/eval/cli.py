"""``sfrun eval`` and ``sfrun data make``: argparse wiring and the command bodies."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfdsl import cli_values
from sfdsl.errors import InputError, SfdslError
from sfdsl.eval import generate
from sfdsl.eval.data import DataError, Item, Row, build_items, coerce, load_rows, parse_assignments
from sfdsl.eval.glue import Target, Warmup, load_target, resolve_models, shared_pool, split_recipe_spec
from sfdsl.log import output_console

if TYPE_CHECKING:
    from rich.console import Console

    from sfdsl.eval.store import ItemRecord

#: Items in flight, samples per item, Ray workers: far above real use, low enough to allocate.
_positive_int = cli_values.integer(1, 1_000_000)
_non_negative = cli_values.number(0.0, above=False)
#: Most rows `sfrun data make` writes.
MAX_ROWS = 10_000_000

# Heavier modules (numpy, matplotlib, rich, sqlite) are imported when a command runs,
# so registering these subcommands keeps `sfrun` start-up fast.

#: Names of the correctness metrics (see ``sfdsl.eval.metrics.METRICS``).
METRIC_NAMES = ("contains", "exact", "numeric", "regex")

#: Builds the backend (Backend or BackendPool) shared by every run from the parsed arguments.
MakeBackend = Callable[[argparse.Namespace], Any]

#: Bumped when the meaning of stored results changes, invalidating old run keys.
STORE_VERSION = 1


def add_eval_parser(subparsers: Any, *, make_backend: MakeBackend | None = None) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand; its ``func`` default calls :func:`run_eval_command`.

    Args:
        subparsers: The object returned by ``parser.add_subparsers()``.
        make_backend: Builds a Backend or BackendPool from the parsed args (e.g.
            ``--model``, ``--backend scripted:FILE``); None: a fresh BackendPool
            (each recipe's declared models). Either way one pool is shared by
            all recipes of the command and closed at the end.

    Returns:
        The new parser (add backend/model options to it as ``sfrun run`` does).
    """
    p = subparsers.add_parser(
        "eval",
        help="evaluate recipes on a dataset: accuracy vs cost",
        description="Run recipes over a JSONL/CSV dataset, score answers against gold, and report "
        "accuracy with CIs, cost, selective-answering, calibration and two-turn metrics. "
        "Results are stored durably in --out; rerunning the same command resumes.",
    )
    p.add_argument(
        "recipes", nargs="+", metavar="RECIPE.sf[:NAME]", help="recipes to compare; the first is the baseline"
    )
    p.add_argument("--data", required=True, metavar="FILE", help="dataset (.jsonl or .csv)")
    p.add_argument(
        "--field",
        action="append",
        default=[],
        metavar="INPUT=COLUMN",
        help="feed a recipe input from a column (default: columns named like the inputs)",
    )
    p.add_argument("--gold", default="answer", metavar="COLUMN", help="gold answer column (default: answer)")
    p.add_argument("--metric", choices=METRIC_NAMES, default="exact", help="correctness metric (default: exact)")
    p.add_argument(
        "--concurrency", "-k", type=_positive_int, default=8, metavar="K", help="items in flight (default: 8)"
    )
    p.add_argument("--limit", type=_positive_int, metavar="N", help="evaluate only the first N rows")
    p.add_argument(
        "--samples",
        type=_positive_int,
        default=1,
        metavar="S",
        help="runs per item with seeds seed..seed+S-1 (default: 1)",
    )
    p.add_argument("--seed", type=cli_values.seed, default=0, help="base seed, 0 to 2^32-1 (default: 0)")
    p.add_argument("--out", default="out/eval", metavar="DIR", help="results directory (default: out/eval)")
    p.add_argument(
        "-i", "--input", action="append", default=[], metavar="KEY=VALUE", help="fix an input for every item"
    )
    p.add_argument("--inputs-json", metavar="FILE", help="a JSON object of inputs fixed for every item (-i wins)")
    p.add_argument(
        "--first-key",
        default="first",
        metavar="KEY",
        help="output holding a first-turn answer, for two-turn metrics (default: first)",
    )
    p.add_argument("--item-timeout", type=cli_values.seconds, metavar="SECONDS", help="per-item wall-clock budget")
    p.add_argument("--max-calls", type=_positive_int, metavar="N", help="per-item budget of model calls")
    p.add_argument("--max-tokens", type=_positive_int, metavar="N", help="per-item budget of tokens")
    p.add_argument("--retry-errors", action="store_true", help="rerun items whose stored result is a failure")
    p.add_argument("--report", action="store_true", help="also write DIR/report.html")
    p.add_argument(
        "--executor",
        default="local",
        metavar="local|ray[:ADDRESS]",
        help="where items run: this process (default), or Ray workers on a local cluster or the one at ADDRESS "
        "(-k is then items in flight per worker; needs the ray extra)",
    )
    p.add_argument(
        "--workers", type=_positive_int, metavar="N", help="Ray workers (default: as many as the cluster holds)"
    )
    p.add_argument("--worker-cpus", type=_non_negative, default=1.0, metavar="C", help="CPUs per Ray worker")
    p.add_argument("--worker-gpus", type=_non_negative, default=0.0, metavar="G", help="GPUs per Ray worker")
    p.set_defaults(func=functools.partial(run_eval_command, make_backend=make_backend))
    return p


def add_data_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``data make {arithmetic,yesno}``; its ``func`` default calls :func:`run_data_command`."""
    p = subparsers.add_parser("data", help="dataset tools")
    sub = p.add_subparsers(dest="data_command", required=True)
    make = sub.add_parser("make", help="generate a synthetic dataset with exact gold answers (JSONL on stdout)")
    make.add_argument("kind", choices=sorted(generate.GENERATORS))
    make.add_argument("--n", type=cli_values.integer(1, MAX_ROWS), default=100, help="number of rows (default: 100)")
    make.add_argument("--seed", type=cli_values.seed, default=0, help="random seed (default: 0)")
    make.add_argument(
        "--difficulty",
        default="1,2,3",
        metavar="LEVELS",
        help="comma-separated difficulty levels, cycled (default: 1,2,3)",
    )
    make.add_argument("--output", "-o", metavar="FILE", type=cli_values.output_file,
                      help="write here instead of stdout")
    make.set_defaults(func=run_data_command)
    return p


def run_data_command(args: argparse.Namespace) -> int:
    """Body of ``sfrun data make``; returns the exit code."""
    try:
        levels = [int(x) for x in str(args.difficulty).split(",") if x.strip()]
        rows = generate.GENERATORS[args.kind](args.n, seed=args.seed, levels=levels)
    except ValueError as exc:
        sys.stderr.write(f"sfrun data: error: {exc}\n")
        return 2
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            sys.stderr.write(f"sfrun data: error: cannot write {args.output}: {exc.strerror or exc}\n")
            return 2
    else:
        sys.stdout.write(text)
    return 0


def run_eval_command(args: argparse.Namespace, *, make_backend: MakeBackend | None = None) -> int:
    """Body of ``sfrun eval``; prints tables to stdout and returns the exit code.

    Errors the user can fix (bad data, compile errors...) are reported in one
    message without a traceback (exit 1); Ctrl-C exits 130 and the run can be
    resumed by rerunning the same command.
    """

    from sfdsl.eval.store import STORE_NAME, WriterLock

    try:
        console = output_console()
        writer = WriterLock(Path(args.out) / STORE_NAME)  # one eval per --out at once, held until its outputs are
        try:                                              # written; a second one stops here, naming this one's pid
            return asyncio.run(_eval(args, make_backend, console))
        finally:
            writer.release()
    except SfdslError as exc:
        sys.stderr.write(f"sfrun eval: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"sfrun eval: interrupted; finished items are saved in {args.out}, rerun to resume\n")
        return 130


def _plan(args: argparse.Namespace, rows: list[Row], backend: Any) -> list[tuple[str, Target, list[Item]]]:
    """Load every recipe and map the data for each, before anything runs or is written."""
    field_map = parse_assignments(args.field, what="--field")
    fixed = fixed_inputs(args)
    plans = []
    labels: set[str] = set()
    for spec_text in args.recipes:
        search = {"import_path": args.import_path} if getattr(args, "import_path", None) else {}
        target = load_target(spec_text, backend, _limits(args), **search)
        target.label = _unique(target.label, spec_text, labels)
        labels.add(target.label)
        items = build_items(
            rows,
            input_types=target.input_types,
            required=target.required,
            field_map=field_map,
            gold=args.gold,
            fixed=fixed,
            limit=args.limit,
            source=str(args.data),
        )
        plans.append((spec_text, target, items))
    return plans


async def _eval(args: argparse.Namespace, make_backend: MakeBackend | None, console: Console) -> int:
    from sfdsl.eval.metrics import compare, get_metric, summarize
    from sfdsl.eval.paired import paired_gains
    from sfdsl.eval.runner import EvalSpec, make_progress, make_run_key, run_eval, stderr_logger
    from sfdsl.eval.store import ResultStore
    from sfdsl.eval.table import print_comparison, print_summary

    out = Path(args.out)
    logger = stderr_logger()
    matcher = get_metric(args.metric)
    fixed = fixed_inputs(args)
    summaries: list[tuple[str, dict[str, Any]]] = []
    records: dict[str, list[ItemRecord]] = {}
    runs: dict[str, Any] = {}
    failures: dict[str, list[dict[str, Any]]] = {}
    rows = load_rows(args.data)  # fail fast on bad data, before a model is loaded
    outputs = [out / "metrics.json"] + ([out / "report.html"] if args.report else [])
    check_writable(outputs)  # and on an output that cannot be written
    made = make_backend(args) if make_backend else None
    backend = shared_pool(made)
    try:
        plans = _plan(args, rows, backend)
        async with contextlib.AsyncExitStack() as stack:
            remote = await _remote_executor(args, make_backend, stack)
            store = stack.enter_context(ResultStore.in_dir(out, lock=False))  # run_eval_command holds the lock
            for spec_text, target, items in plans:
                run: Any = Warmup(target.run_item) if remote is None else remote.for_target(target)
                models = await (
                    resolve_models(target, backend, run, items, args.seed)
                    if remote is None
                    else run.model_ids(items, args.seed)
                )
                key_parts = {
                    "version": STORE_VERSION,
                    "recipe": target.label,
                    "fingerprint": target.fingerprint,
                    "models": models,
                    "metric": args.metric,
                    "first_key": args.first_key,
                    "seed": args.seed,
                    "limits": _limits(args),
                    "fixed_inputs": {k: coerce(v, target.input_types.get(k), where=k) for k, v in fixed.items()},
                }
                spec = EvalSpec(
                    run_key=make_run_key(**key_parts),
                    label=target.label,
                    matcher=matcher,
                    first_key=args.first_key,
                    samples=args.samples,
                    seed=args.seed,
                    item_timeout=None if args.item_timeout is None else 2 * args.item_timeout + 5,  # backstop
                )
                store.register_run(spec.run_key, spec.label, {**key_parts, "source": spec_text})
                if args.retry_errors:
                    logger.info("eval.retry_errors", recipe=spec.label, dropped=store.drop_errors(spec.run_key))
                outcome = await run_eval(
                    items,
                    run,
                    spec,
                    store=store,
                    concurrency=args.concurrency,
                    progress=make_progress(logger=logger),
                    logger=logger,
                )
                summary = summarize(outcome.records, seed=args.seed)
                summaries.append((spec.label, summary))
                records[spec.label] = outcome.records
                runs[spec.label] = {
                    "run_key": spec.run_key,
                    "source": spec_text,
                    "models": key_parts["models"],
                    "new": outcome.new,
                    "resumed": outcome.resumed,
                    "summary": summary,
                }
                failures[spec.label] = [
                    {"item_id": r.item_id, "sample": r.sample, "kind": r.error_kind, "error": r.error}
                    for r in outcome.records
                    if r.error is not None
                ]
    finally:
        await backend.aclose()
        if made is not None and made is not backend and hasattr(made, "aclose"):
            await made.aclose()
    comparison = compare(summaries, paired_gains(records, [label for label, _ in summaries], seed=args.seed))
    for label, summary in summaries:
        print_summary(console, label, summary)
    if len(summaries) > 1:
        print_comparison(console, comparison)
    meta = {
        "data": str(args.data),
        "metric": args.metric,
        "gold": args.gold,
        "samples": args.samples,
        "seed": args.seed,
        "limit": args.limit,
    }
    metrics_path = out / "metrics.json"
    doc = _json_safe({"meta": meta, "recipes": runs, "comparison": comparison})
    write_output(metrics_path, lambda: json.dumps(doc, indent=2, default=str))
    console.print(f"metrics: {metrics_path}")
    if args.report:
        from sfdsl.eval.report import render_report

        path = out / "report.html"
        write_output(path, lambda: render_report(summaries, comparison, meta=meta, failures=failures))
        console.print(f"report: {path}")
    return 0


def fixed_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """Inputs fixed for every item: ``--inputs-json FILE`` (typed JSON values), then ``-i`` pairs over them.

    Raises:
        InputError: for an unreadable file, one that is not a JSON object, or a malformed ``-i``.
    """
    from sfdsl.inputs import load_json

    fixed: dict[str, Any] = {}
    path = getattr(args, "inputs_json", None)
    if path:
        data = load_json(path, what="inputs file")
        if not isinstance(data, dict):
            raise InputError(f"{path} must hold a JSON object of inputs")
        fixed.update(data)
    fixed.update(parse_assignments(args.input, what="-i"))
    return fixed


def check_writable(paths: list[Path]) -> None:
    """Refuse, before anything runs, output files that cannot be written.

    Raises:
        StoreError: naming the first such path and why.
    """
    from sfdsl.eval.store import StoreError

    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create output directory {path.parent}: {exc.strerror or exc}") from None
        if path.is_dir():
            raise StoreError(f"cannot write {path}: it is a directory")
        target = path if path.exists() else path.parent
        if not os.access(target, os.W_OK):
            raise StoreError(f"cannot write {path}: permission denied")


def write_output(path: Path, text: Callable[[], str]) -> None:
    """Write one output file of an eval.

    Raises:
        StoreError: with a one-line reason; the results stay in the store, so a rerun writes the file.
    """
    from sfdsl.eval.store import StoreError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text(), encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}; the results are saved in the store, "
                         "rerun the same command to write it") from None


async def _remote_executor(
    args: argparse.Namespace, make_backend: MakeBackend | None, stack: contextlib.AsyncExitStack
) -> Any:
    """The started RayExecutor for ``--executor ray[:ADDRESS]`` (closed with ``stack``), or None to run here."""
    if args.executor == "local":
        if args.workers is not None or args.worker_gpus:
            raise InputError("--workers and --worker-gpus need --executor ray")
        return None
    from sfdsl.eval.ray_executor import RayExecutor, RaySettings

    settings = RaySettings(
        address=RaySettings.parse_address(args.executor),
        workers=args.workers,
        cpus=args.worker_cpus,
        gpus=args.worker_gpus,
        concurrency=args.concurrency,
    )
    worker_args = _absolute_paths(args)
    build = functools.partial(make_backend, worker_args) if make_backend else None
    from sfdsl.log import configure_logging

    setup = functools.partial(configure_logging, -1 if getattr(args, "quiet", False) else getattr(args, "verbose", 0))
    return await stack.enter_async_context(RayExecutor(build, settings, limits=_limits(args), worker_setup=setup))


def _absolute_paths(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``args`` whose file paths (scripted backend, model file) also resolve in a worker's directory."""
    fixed = argparse.Namespace(**vars(args))
    backend = getattr(args, "backend", None) or ""
    if backend.startswith("scripted:"):
        fixed.backend = "scripted:" + str(Path(backend.partition(":")[2]).resolve())
    model = getattr(args, "model", None)
    if model and Path(model).exists():
        fixed.model = str(Path(model).resolve())
    return fixed


def _unique(label: str, spec_text: str, taken: set[str]) -> str:
    if label not in taken:
        return label
    alt = f"{Path(split_recipe_spec(spec_text)[0]).stem}:{label}"
    n = 2
    while alt in taken:
        alt, n = f"{Path(split_recipe_spec(spec_text)[0]).stem}:{label}#{n}", n + 1
    return alt


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    """Per-item budget limits given on the command line."""
    limits = {"max_calls": args.max_calls, "max_tokens": args.max_tokens, "timeout_s": args.item_timeout}
    return {k: v for k, v in limits.items() if v is not None}


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None so metrics.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


__all__ = [
    "DataError",
    "Target",
    "add_data_parser",
    "add_eval_parser",
    "load_target",
    "run_data_command",
    "run_eval_command",
]
