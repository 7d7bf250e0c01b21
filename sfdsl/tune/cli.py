"""``sfrun tune``: argparse wiring and the command body (search, front, held-out test, outputs)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sfdsl import cli_values
from sfdsl.errors import InputError, ModelNotFoundError, RecipeNotFoundError, SfdslError, SourceNotFoundError
from sfdsl.eval.cli import METRIC_NAMES, STORE_VERSION, MakeBackend, check_writable, fixed_inputs, write_output
from sfdsl.eval.data import Row, build_items, load_rows, parse_assignments
from sfdsl.eval.glue import Target, load_target, shared_pool, split_recipe_spec
from sfdsl.log import output_console

if TYPE_CHECKING:
    from rich.console import Console

    from sfdsl.tune.front import Point
    from sfdsl.tune.search import SearchOutcome

#: Errors in what the user gave (exit 2), found before a model runs.
USAGE_ERRORS = (InputError, SourceNotFoundError, RecipeNotFoundError, ModelNotFoundError)

#: The recipe library of a source checkout, where a ``--baseline`` name is also looked up.
LIBRARY = Path(__file__).resolve().parent.parent.parent / "recipes"

#: Output files of a tune directory.
FRONT, BEST, SUMMARY, TEST_DATA, REPORT = "front.json", "best.json", "tune.json", "test.jsonl", "report.html"


def add_tune_parser(subparsers: Any, *, make_backend: MakeBackend | None = None) -> argparse.ArgumentParser:
    """Add the ``tune`` subcommand (``sfrun eval``'s data and scoring flags, plus the search's)."""
    from sfdsl.eval.cli import _non_negative, _positive_int

    p = subparsers.add_parser(
        "tune",
        help="search recipe inputs for the best accuracy at a cost",
        description="Search recipes and their inputs (--space) on a dev split for the Pareto front of accuracy "
        "against cost, choose a configuration under --constraint, and score it on a held-out test split against "
        "a baseline. Results are stored in --out; rerunning the same command resumes.",
    )
    p.add_argument("recipes", nargs="+", metavar="RECIPE.sf[:NAME]", help="recipes to tune (several: one more choice)")
    p.add_argument("--data", required=True, metavar="FILE", help="dataset (.jsonl or .csv)")
    p.add_argument("--space", action="append", default=[], metavar="SPEC",
                   help="a searched input: NAME=LOW..HIGH[:log] or NAME=[A,B,...] (repeatable)")
    p.add_argument("--objective", default="accuracy,tokens", metavar="accuracy,tokens|calls|latency",
                   help="accuracy against which cost (default: accuracy,tokens)")
    p.add_argument("--constraint", action="append", default=[], metavar="NAME<=X|accuracy>=X",
                   help="a limit the choice must meet (repeatable): a mean per item (tokens_per_item<=600, "
                   "calls_per_item<=4, wall_s_per_item<=2), accuracy>=0.8, or a static worst case per item "
                   "(bound_tokens<=1024, bound_calls<=8: configurations beyond it are skipped unrun)")
    p.add_argument("--trials", type=_positive_int, default=20, metavar="N",
                   help="configurations to run (skipped and repeated ones do not count; default: 20)")
    p.add_argument("--split", default=None, metavar="A:B",
                   help="the first A items for the search, the next B for the held-out test (default: half each)")
    p.add_argument("--first-rung", type=_positive_int, metavar="M",
                   help="dev items of the first racing rung (default: an eighth of them, at least 8)")
    p.add_argument("--baseline", default="chain_of_thought", metavar="RECIPE",
                   help="compare the choice with this recipe on the test split: a tuned recipe's name, a name "
                   "found next to the recipes, FILE.sf[:NAME], or none (default: chain_of_thought)")
    p.add_argument("--field", action="append", default=[], metavar="INPUT=COLUMN",
                   help="feed a recipe input from a column (default: columns named like the inputs)")
    p.add_argument("--gold", default="answer", metavar="COLUMN", help="gold answer column (default: answer)")
    p.add_argument("--metric", choices=METRIC_NAMES, default="exact", help="correctness metric (default: exact)")
    p.add_argument("--concurrency", "-k", type=_positive_int, default=8, metavar="K", help="items in flight (8)")
    p.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N rows")
    p.add_argument("--seed", type=cli_values.seed, default=0, help="base seed of runs and of the search (default: 0)")
    p.add_argument("--out", default="out/tune", metavar="DIR", help="results directory (default: out/tune)")
    p.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                   help="fix an input of every recipe that declares it")
    p.add_argument("--inputs-json", metavar="FILE", help="a JSON object of fixed inputs (-i values win)")
    p.add_argument("--first-key", default="first", metavar="KEY", help="output holding a first-turn answer")
    p.add_argument("--item-timeout", type=cli_values.seconds, metavar="SECONDS", help="per-item wall-clock budget")
    p.add_argument("--max-calls", type=_positive_int, metavar="N", help="per-item budget of model calls")
    p.add_argument("--max-tokens", type=_positive_int, metavar="N", help="per-item budget of tokens")
    p.add_argument("--report", action="store_true", help="also write DIR/report.html")
    p.add_argument("--executor", default="local", metavar="local|ray[:ADDRESS]",
                   help="where items run: this process (default) or Ray workers, as for eval")
    p.add_argument("--workers", type=_positive_int, metavar="N", help="Ray workers")
    p.add_argument("--worker-cpus", type=_non_negative, default=1.0, metavar="C", help="CPUs per Ray worker")
    p.add_argument("--worker-gpus", type=_non_negative, default=0.0, metavar="G", help="GPUs per Ray worker")
    p.set_defaults(func=functools.partial(run_tune_command, make_backend=make_backend))
    return p


def run_tune_command(args: argparse.Namespace, *, make_backend: MakeBackend | None = None) -> int:
    """Body of ``sfrun tune``: 0 done, 2 bad usage or input (found before a model runs), 1 compile errors or a
    failure, 130 Ctrl-C (rerun the same command to resume)."""

    try:
        console = output_console(highlight=False)
        return asyncio.run(_tune(args, make_backend, console))
    except USAGE_ERRORS as exc:
        sys.stderr.write(f"sfrun tune: error: {exc}\n")
        return 2
    except SfdslError as exc:
        sys.stderr.write(f"sfrun tune: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"sfrun tune: interrupted; finished trials are saved in {args.out}, rerun to resume\n")
        return 130


def split_rows(rows: Sequence[Row], text: str | None) -> tuple[list[Row], list[Row]]:
    """``A:B`` -> (the first A rows, the next B); None -> half and half.

    Raises:
        InputError: for a malformed split, or one that asks for more rows than there are.
    """
    if text is None:
        if len(rows) < 2:
            raise InputError("tune needs at least 2 rows (a dev and a test item)")
        half = (len(rows) + 1) // 2
        return list(rows[:half]), list(rows[half:])
    a, sep, b = text.partition(":")
    try:
        dev, test = int(a), int(b)
    except ValueError:
        raise InputError(f"--split expects A:B (two counts), got {text!r}") from None
    if not sep or dev < 1 or test < 0:
        raise InputError(f"--split expects A:B with A >= 1 and B >= 0, got {text!r}")
    if dev + test > len(rows):
        raise InputError(f"--split {text} asks for {dev + test} rows but the data has {len(rows)}")
    return list(rows[:dev]), list(rows[dev:dev + test])


async def _tune(args: argparse.Namespace, make_backend: MakeBackend | None, console: Console) -> int:
    from sfdsl.eval.cli import _limits, _remote_executor, _unique
    from sfdsl.eval.metrics import get_metric
    from sfdsl.eval.runner import stderr_logger
    from sfdsl.eval.store import ResultStore
    from sfdsl.tune.front import choose, measure
    from sfdsl.tune.goals import parse_constraints, parse_objective
    from sfdsl.tune.probe import dry_run
    from sfdsl.tune.racing import default_first_rung
    from sfdsl.tune.search import Search, import_optuna, signature
    from sfdsl.tune.space import parse_space, probe_space
    from sfdsl.tune.trials import Evaluator, Judging, fixed_for

    optuna = import_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command prints its own line per trial
    objective = parse_objective(args.objective)
    constraints = parse_constraints(args.constraint)
    rows = load_rows(args.data)
    rows = rows[: args.limit] if args.limit else rows
    dev, test = split_rows(rows, args.split)
    fixed = fixed_inputs(args)
    field_map = parse_assignments(args.field, what="--field")
    out = Path(args.out)
    check_writable([out / FRONT, out / BEST, out / SUMMARY, out / TEST_DATA] + ([out / REPORT] if args.report else []))
    made = make_backend(args) if make_backend else None
    backend = shared_pool(made)
    logger = stderr_logger()
    try:
        targets: dict[str, Target] = {}
        specs: dict[str, str] = {}
        for spec_text in args.recipes:
            target = load_target(spec_text, backend, _limits(args), import_path=args.import_path or ())
            target.label = _unique(target.label, spec_text, set(targets))
            targets[target.label], specs[target.label] = target, spec_text
        _check_fixed(fixed, targets)
        judging = Judging(metric=args.metric, matcher=get_metric(args.metric), gold=args.gold, field_map=field_map,
                          fixed=fixed, first_key=args.first_key, seed=args.seed, limits=_limits(args),
                          source=str(args.data), store_version=STORE_VERSION,
                          item_timeout=None if args.item_timeout is None else 2 * args.item_timeout + 5)
        baseline = _baseline(args.baseline, specs, backend, _limits(args), args.import_path or ())
        if baseline is not None and baseline[0] not in targets:
            targets[baseline[0]] = baseline[1]
            specs[baseline[0]] = baseline[2]
        columns = set(field_map) | {k for r in dev for k in r.values}
        first: dict[str, dict[str, Any]] = {}
        for label, target in targets.items():  # data problems surface now, before a model runs
            items = build_items(dev[:1] + test[:1], input_types=target.input_types, required=target.required,
                                field_map=field_map, gold=args.gold, fixed=fixed_for(target, fixed),
                                source=str(args.data))
            first[label] = dict(items[0].inputs)
        tuned = {label: targets[label].input_types for label in list(targets)[: len(args.recipes)]}
        space = parse_space(args.space, tuned, fixed=fixed, columns=sorted(columns))

        async def probe(label: str, inputs: dict[str, Any]) -> None:
            await dry_run(targets[label].recipe, {**first[label], **inputs})

        await probe_space(space, probe)
        sig = signature(recipes={k: targets[k].fingerprint for k in tuned}, space=[d.describe() for d in space.dims],
                        objective=objective.cost, constraints=[str(c) for c in constraints],
                        dev=[r.values for r in dev],
                        metric=args.metric, gold=args.gold, fields=field_map, fixed=fixed, seed=args.seed,
                        limits=_limits(args), first_rung=args.first_rung, backend=_identity(args))
        async with contextlib.AsyncExitStack() as stack:
            remote = await _remote_executor(args, make_backend, stack)
            store = stack.enter_context(ResultStore.in_dir(out))
            evaluator = Evaluator(targets, judging, store, backend=backend, state_dir=out, identity=_identity(args),
                                  concurrency=args.concurrency, remote=remote)
            search = Search(space, evaluator, dev, objective, constraints, args.trials, args.seed, out,
                            args.first_rung or default_first_rung(len(dev)), sig, logger=logger)
            outcome = await search.run()
            configs = outcome.complete()
            bounds = {c.key: _bound_dict(evaluator.bound(c)) for c in configs}
            points = measure(configs, outcome.records, {c.key: evaluator.inputs(c) for c in configs}, objective,
                             seed=args.seed, bounds=bounds)
            chosen = choose(points, objective, constraints)
            tested = await _test(evaluator, chosen, baseline, test, seed=args.seed) if chosen and test else None
    finally:
        await backend.aclose()
        if made is not None and made is not backend and hasattr(made, "aclose"):
            await made.aclose()
    doc = _write_outputs(args, out, outcome, points, chosen, tested, specs, objective, constraints, test,
                         fresh=evaluator.fresh)
    _print(console, doc, points, objective)
    if args.report:
        from sfdsl.tune.report import render_report

        write_output(out / REPORT, lambda: render_report(doc))
        console.print(f"report: {out / REPORT}")
    return 0


def _bound_dict(bound: Any) -> dict[str, int] | None:
    return None if bound is None else {"calls": bound.calls, "tokens": bound.tokens}


def _check_fixed(fixed: dict[str, Any], targets: dict[str, Target]) -> None:
    for name in fixed:
        if not any(name in t.input_types for t in targets.values()):
            raise InputError(f"-i {name}: no recipe has an input {name!r}")


def _identity(args: argparse.Namespace) -> str:
    return json.dumps([getattr(args, "backend", None), getattr(args, "model", None)])


def _baseline(name: str, specs: dict[str, str], backend: Any, limits: dict[str, Any],
              import_path: Sequence[str]) -> tuple[str, Target, str] | None:
    """(label, target, spec) of ``--baseline``; a tuned recipe's label reuses it."""
    if name.lower() == "none":
        return None
    if name in specs:
        return name, None, specs[name]  # type: ignore[return-value]
    path, _ = split_recipe_spec(name)
    if path.endswith(".sf"):
        spec = name
    else:
        places = [Path(split_recipe_spec(s)[0]).parent for s in specs.values()] + [LIBRARY]
        hit = next((d / f"{name}.sf" for d in places if (d / f"{name}.sf").is_file()), None)
        if hit is None:
            raise InputError(f"--baseline {name}: no {name}.sf next to the recipes or in the recipe library; "
                             "pass FILE.sf[:NAME] or none")
        spec = f"{hit}:{name}"
    target = load_target(spec, backend, limits, import_path=import_path)
    target.label = f"baseline:{target.label}" if target.label in specs else target.label
    return target.label, target, spec


async def _test(evaluator: Any, chosen: Point, baseline: tuple[str, Any, str] | None, test: list[Row], *,
                seed: int) -> dict[str, Any]:
    """The chosen configuration and the baseline on the test rows, compared item by item."""
    from sfdsl.eval.metrics import summarize
    from sfdsl.eval.paired import paired_gain
    from sfdsl.tune.space import Config

    records = await evaluator.evaluate(chosen.config, test)
    out: dict[str, Any] = {"items": len(test), "summary": summarize(records, seed=seed)}
    if baseline is not None:
        base = await evaluator.evaluate(Config(baseline[0], {}), test)
        out["baseline"] = {"recipe": baseline[0], "spec": baseline[2], "summary": summarize(base, seed=seed)}
        out["paired"] = paired_gain(base, records, seed=seed)
    return out


def reproduce_command(args: argparse.Namespace, spec: str, out: Path) -> str:
    """The ``sfrun eval`` command that reproduces the test-split figure of the chosen configuration."""
    cmd = ["sfrun", "eval", spec, "--data", str(out / TEST_DATA), "--inputs-json", str(out / BEST),
           "--metric", args.metric, "--gold", args.gold, "--seed", str(args.seed)]
    for pair in args.field:
        cmd += ["--field", pair]
    if args.first_key != "first":
        cmd += ["--first-key", args.first_key]
    for flag, value in (("--max-calls", args.max_calls), ("--max-tokens", args.max_tokens),
                        ("--item-timeout", args.item_timeout), ("--backend", getattr(args, "backend", None)),
                        ("--model", getattr(args, "model", None))):
        if value is not None:
            cmd += [flag, str(value)]
    if getattr(args, "no_cache", False):
        cmd.append("--no-cache")
    for path in getattr(args, "import_path", None) or []:
        cmd += ["--import-path", path]
    return shlex.join([*cmd, "--out", str(out / "reproduce")])


def _write_outputs(args: argparse.Namespace, out: Path, outcome: SearchOutcome, points: list[Point],
                   chosen: Point | None, tested: dict[str, Any] | None, specs: dict[str, str], objective: Any,
                   constraints: Any, test: list[Row], *, fresh: int) -> dict[str, Any]:
    from sfdsl.eval.cli import _json_safe

    front = [p.to_json(objective, chosen=p is chosen) for p in points]
    write_output(out / FRONT, lambda: json.dumps(_json_safe(front), indent=2))
    doc: dict[str, Any] = {
        "meta": {"data": str(args.data), "metric": args.metric, "objective": f"accuracy,{objective.cost}",
                 "constraints": [str(c) for c in constraints], "seed": args.seed,
                 "split": args.split, "trials": args.trials, "recipes": list(args.recipes)},
        "objective_field": objective.field,
        "trials": [vars(t) | {"config": str(t.config), "recipe": t.config.recipe, "inputs": dict(t.config.inputs)}
                   for t in outcome.trials],
        "skipped": outcome.skipped,
        "fresh_results": fresh,
        "front": front,
        "chosen": None,
    }
    if chosen is not None:
        write_output(out / BEST, lambda: json.dumps(chosen.inputs, indent=2, default=str))
        command = reproduce_command(args, specs[chosen.config.recipe], out)
        doc["chosen"] = {"recipe": chosen.config.recipe, "config": str(chosen.config), "inputs": chosen.inputs,
                         "dev": chosen.to_json(objective, chosen=True), "test": tested,
                         "reproduce": command if test else None}
        if test:
            write_output(out / TEST_DATA, lambda: "".join(json.dumps(r.values, ensure_ascii=False) + "\n"
                                                          for r in test))
    else:
        (out / BEST).unlink(missing_ok=True)  # a best.json of an earlier run would mislead
    write_output(out / SUMMARY, lambda: json.dumps(_json_safe(doc), indent=2, default=str))
    return _json_safe(doc)  # type: ignore[no-any-return]


def _print(console: Console, doc: dict[str, Any], points: list[Point], objective: Any) -> None:
    from rich.table import Table

    table = Table(title="Dev-split Pareto front (★ on the front, ◆ chosen)", title_justify="left")
    for name in ("", "configuration", "items", "accuracy", "95% CI", "tokens/item", "calls/item", "s/item"):
        table.add_column(name, justify="left" if name in ("", "configuration") else "right")
    chosen = doc.get("chosen") or {}
    for p, row in zip(points, doc["front"], strict=True):
        mark = ("◆" if row["chosen"] else "") + ("★" if p.on_front else "")
        lo, hi = row["accuracy_ci"] or [None, None]
        cost = row["cost_per_item"]
        table.add_row(mark, str(p.config), str(row["items"]), f"{row['accuracy']:.3f}", _ci(lo, hi),
                      _num(cost["tokens"]), _num(cost["calls"]), _num(cost["wall_s"], 3))
    console.print(table)
    states = [t["state"] for t in doc["trials"]]
    console.print(f"trials: {states.count('complete')} complete, {states.count('stopped')} stopped early, "
                  f"{doc['skipped']} skipped on their static bound, {states.count('repeat')} repeated; "
                  f"{doc['fresh_results']} item results computed now (the rest came from the store)")
    if not chosen:
        why = (f"meets {', '.join(doc['meta']['constraints'])}" if points and doc["meta"]["constraints"]
               else "ran on every dev item")
        console.print(f"no configuration {why}; nothing was chosen", markup=False)
        return
    console.print(f"chosen: {chosen['config']}  (dev accuracy {chosen['dev']['accuracy']:.3f})")
    tested = chosen.get("test")
    if tested:
        s = tested["summary"]
        lo, hi = s["accuracy_ci"]
        console.print(f"test: accuracy {s['accuracy']:.3f} {_ci(lo, hi)} on {s['items']} items, "
                      f"{_num(s['cost']['tokens_per_item'])} tokens/item")
        pair, base = tested.get("paired"), tested.get("baseline")
        if base and pair:
            glo, ghi = pair["gain_ci"]
            console.print(f"vs {base['recipe']} (accuracy {base['summary']['accuracy']:.3f}): gain "
                          f"{pair['gain']:+.3f} {_ci(glo, ghi, signed=True)}, {pair['wins']} items won, "
                          f"{pair['losses']} lost (sign test p={pair['p_value']:.3g})")
        console.print(f"reproduce: {chosen['reproduce']}", soft_wrap=True, markup=False)


def _ci(lo: float | None, hi: float | None, *, signed: bool = False) -> str:
    if lo is None or hi is None:
        return "-"
    return f"[{lo:+.3f}, {hi:+.3f}]" if signed else f"[{lo:.3f}, {hi:.3f}]"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


__all__ = ["add_tune_parser", "reproduce_command", "run_tune_command", "split_rows"]
