"""`sfrun`: run, check and draw .sf recipes from the shell.

Exit codes: 0 success, 1 compile errors, 2 bad usage or input (missing file,
unknown recipe, bad value, unknown model), 3 a failed run (any other error: a
backend, a step, the budget, or an unexpected failure), 130 interrupted. A
failure prints one located line on stderr; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import traceback
from typing import Any

from sfdsl import cli_values
from sfdsl.declarations import backend_usage
from sfdsl.errors import (
    BudgetExceeded,
    CompileError,
    InputError,
    ModelNotFoundError,
    RecipeNotFoundError,
    SfdslError,
    SourceNotFoundError,
)
from sfdsl.log import configure_logging, output_console

EXIT_COMPILE, EXIT_USAGE, EXIT_RUN, EXIT_INTERRUPTED = 1, 2, 3, 130
#: Columns of the result table when stdout is not a terminal: wide enough that no row wraps.


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sfrun` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else args.verbose)
    try:
        handler = getattr(args, "handler", None) or args.func
        return int(handler(args))
    except CompileError as exc:
        print(exc.render(), file=sys.stderr)
        errors = sum(1 for d in exc.diagnostics if d.is_error)
        print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
        return EXIT_COMPILE
    except USAGE_ERRORS as exc:
        print(f"sfrun: error: {exc.located()}", file=sys.stderr)
        return EXIT_USAGE
    except SfdslError as exc:
        return _failed(f"run failed: {exc.located()}", exc, args.verbose)
    except KeyboardInterrupt:
        print("sfrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `sfrun graph ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one line, the traceback with -v
        return _failed(f"internal error: {type(exc).__name__}: {exc}", exc, args.verbose)


USAGE_ERRORS = (InputError, SourceNotFoundError, RecipeNotFoundError, ModelNotFoundError)


def _failed(line: str, exc: BaseException, verbose: int) -> int:
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"sfrun: {' '.join(line.split())}", file=sys.stderr)
    return EXIT_RUN


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfrun", description="Run LLM self-feedback recipes written in .sf.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log events to stderr (-vv: debug) and show tracebacks of failed runs")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run a recipe", description="Run a recipe and print its result.")
    run.add_argument("file", help=".sf file")
    run.add_argument("recipe", nargs="?", help="recipe name (default: the file's last recipe)")
    run.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE", help="an input value")
    run.add_argument("--inputs-json", metavar="FILE", help="a JSON object of inputs")
    add_backend_options(run)
    run.add_argument("--seed", type=cli_values.seed, default=0, help="run seed, 0 to 2^32-1 (default 0)")
    run.add_argument("--trace", metavar="FILE", type=cli_values.output_file,
                     help="append a JSONL trace of events to FILE")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--steps", action="store_true", help="with --json, include every step record")
    run.add_argument("--max-calls", type=_positive(int), help="budget: model calls")
    run.add_argument("--max-tokens", type=_positive(int), help="budget: generated tokens")
    run.add_argument("--timeout", type=cli_values.seconds, help="budget: wall-clock seconds")
    add_import_path_option(run)
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check", help="check recipes and print cost bounds",
                                description="Parse and check .sf files; print errors, warnings and cost bounds.")
    check.add_argument("files", nargs="+", help=".sf files")
    check.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                       help="bound the cost for these inputs instead of the defaults")
    add_import_path_option(check)
    check.set_defaults(handler=cmd_check)

    graph = commands.add_parser("graph", help="print a recipe's plan", description="Print a recipe's execution plan.")
    graph.add_argument("file")
    graph.add_argument("recipe", nargs="?")
    graph.add_argument("--format", choices=("mermaid", "dot", "text"), default="mermaid")
    add_import_path_option(graph)
    graph.set_defaults(handler=cmd_graph)

    serve = commands.add_parser(
        "serve", help="serve recipes as OpenAI-compatible models",
        description="Serve every recipe of a .sf file or a directory over the OpenAI API (/v1/chat/completions, "
                    "/v1/completions, /v1/models, /health, /metrics). A request's model is a recipe name, "
                    "optionally with @ALIAS to load another GGUF; its last user message feeds the recipe.")
    serve.add_argument("path", help="a .sf file or a directory of them")
    serve.add_argument("-i", "--input", action="append", default=[], metavar="KEY=VALUE",
                       help="set an input of every run of the recipes that declare it; a request may override it")
    serve.add_argument("--inputs-json", metavar="FILE", help="a JSON object of fixed inputs (-i values win)")
    serve.add_argument("--pin-input", action="append", default=[], metavar="KEY=VALUE",
                       help="fix an input of every run; a request that sets another value gets a 400")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    serve.add_argument("--port", type=cli_values.port, default=8000, help="port (0 picks a free one)")
    add_backend_options(serve)
    add_import_path_option(serve)
    serve.add_argument("--max-concurrency", type=_positive(int), default=8, metavar="N", help="runs at once (8)")
    serve.add_argument("--max-queue", type=_positive(int, zero=True), default=256, metavar="N",
                       help="requests waiting for a run; beyond it 429 (256)")
    serve.add_argument("--timeout", type=cli_values.seconds, default=300.0, metavar="S",
                       help="seconds a request may wait and run before a 504 (300)")
    serve.add_argument("--max-body-bytes", type=_positive(int), default=1 << 20, metavar="B",
                       help="largest request body; beyond it 413 (1 MiB)")
    serve.add_argument("--max-n", type=_positive(int), default=32, metavar="N", help="largest n a request may ask (32)")
    serve.add_argument("--cache-max-mb", type=_positive(float, maximum=1e9), default=256.0, metavar="MB",
                       help="bound of the on-disk cache; oldest entries are evicted (256)")
    add_admission_options(serve)
    serve.set_defaults(handler=cmd_serve)

    from sfdsl.integrations import mcp_server

    add_import_path_option(mcp_server.add_parser(commands, add_backend_options, make_pool))
    from sfdsl import format_command
    from sfdsl.lsp import command as lsp_command

    format_command.add_parser(commands)
    add_import_path_option(lsp_command.add_parser(commands))
    try:
        from sfdsl.eval.cli import add_data_parser, add_eval_parser
    except ImportError:  # pragma: no cover - eval ships with the package
        pass
    else:
        evaluate = add_eval_parser(commands, make_backend=make_pool)
        add_backend_options(evaluate)
        add_import_path_option(evaluate)
        add_data_parser(commands)
        from sfdsl.tune.cli import add_tune_parser

        tune = add_tune_parser(commands, make_backend=make_pool)
        add_backend_options(tune)
        add_import_path_option(tune)
    return parser


def add_import_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import-path", action="append", default=[], metavar="DIR",
                        help="a directory imports may also read (repeatable; also $SFDSL_PATH); by default imports "
                             "must stay inside the recipe file's directory")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", metavar="SPEC",
                        help=f"use one backend for every model declaration: {backend_usage()} (several "
                             "comma-separated URLs: a fleet, least-loaded first)")
    parser.add_argument("--model", metavar="PATH|ALIAS", help="GGUF file or alias for llama models")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the on-disk cache")


def make_pool(args: argparse.Namespace) -> Any:
    """A backend pool from --backend, --model and --no-cache."""
    from sfdsl.runtime.cache import CachedBackend
    from sfdsl.runtime.pool import pool_from_spec

    return pool_from_spec(args.backend, model=args.model, wrap=None if args.no_cache else CachedBackend)


def parse_inputs(pairs: list[str], json_file: str | None) -> dict[str, Any]:
    from sfdsl.errors import InputError

    inputs: dict[str, Any] = {}
    if json_file:
        data = cli_values.load_inputs_json(json_file)
        if not isinstance(data, dict):
            raise InputError(f"{json_file} must hold a JSON object of inputs")
        inputs.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"bad input {pair!r}: write -i key=value")
        inputs[key.strip()] = value
    return inputs


def cmd_run(args: argparse.Namespace) -> int:
    from sfdsl.api import load
    from sfdsl.runtime.context import Budget
    from sfdsl.runtime.session import Runtime

    program = load(args.file, import_path=args.import_path)
    recipe = program.recipe(args.recipe)
    inputs = parse_inputs(args.input, args.inputs_json)
    budget = Budget(max_calls=args.max_calls, max_tokens=args.max_tokens, timeout_s=args.timeout)
    try:
        with Runtime(pool=make_pool(args)) as runtime:
            result = recipe.run(inputs, runtime=runtime, seed=args.seed, budget=budget, trace=args.trace,
                                from_text=True)
    except BudgetExceeded as exc:
        print_partial(exc, as_json=args.json, steps=args.steps)
        raise
    if args.json:
        data = result.summary()
        if args.steps:
            data["steps"] = [s.model_dump(mode="json") for s in result.steps]
        print(json.dumps(data, indent=2, default=str))
        return 0
    print_result(result)
    return 0


def print_partial(exc: BudgetExceeded, *, as_json: bool, steps: bool) -> None:
    """What a budget-stopped or timed-out run did: JSON on stdout, or its cost on stderr."""
    partial = exc.partial if isinstance(exc.partial, dict) else {}
    cost = partial.get("cost") or {}
    records = partial.get("steps") or []
    if as_json:
        data = {"stopped": partial.get("stopped", "budget"), "error": str(exc), "run_id": partial.get("run_id"),
                "cost": cost, "outputs": {r["node_id"]: r["output"] for r in records
                            if not r.get("error") and r.get("output") is not None}}
        if steps:
            data["steps"] = records
        print(json.dumps(data, indent=2, default=str))
        return
    print(f"sfrun: partial result: {cost.get('calls', 0)} calls, {cost.get('completion_tokens', 0)} generated + "
          f"{cost.get('prompt_tokens', 0)} prompt tokens, {len(records)} steps run", file=sys.stderr)


def print_result(result: Any) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if result.abstained:
        table.add_row("abstained", result.reason or "yes")
    table.add_row("answer", _shown(result.answer))
    if result.truncated:
        table.add_row("truncated", "yes: a token limit cut short the generation the answer was read from")
    if result.score is not None:
        table.add_row("score", f"{result.score:.3f}")
    for key, value in result.outputs.items():
        if key not in ("answer", "score"):
            table.add_row(key, _shown(value))
    cost = result.cost
    bound = result.bound or {}
    table.add_row("cost", f"{cost.calls} calls ({cost.requests} requests, {cost.cached_calls} cached), "
                          f"{cost.completion_tokens} generated + "
                          f"{cost.prompt_tokens} prompt tokens, {cost.wall_s:.2f} s")
    table.add_row("bound", f"≤ {bound.get('calls')} calls, ≤ {bound.get('tokens')} generated tokens")
    table.add_row("run", f"{result.run_id} (seed {result.seed})")
    # piped output keeps each row on one line (for grep), whatever the width; a terminal wraps to its own
    output_console(highlight=False, soft_wrap=True).print(table)


def _shown(value: Any) -> str:
    if value is None:
        return "(no answer)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def cmd_check(args: argparse.Namespace) -> int:
    from sfdsl.compiler import compile_file, recipe_key
    from sfdsl.diagnostics import render_all
    from sfdsl.errors import SourceNotFoundError

    failed = False
    for file in args.files:
        try:
            compiled = compile_file(file, import_path=args.import_path)
        except CompileError as exc:
            print(exc.render())
            errors = sum(1 for d in exc.diagnostics if d.is_error)
            print(f"{file}: {errors} error{'s' if errors != 1 else ''}")
            failed = True
            continue
        except SourceNotFoundError as exc:
            print(f"sfrun: error: {exc}", file=sys.stderr)
            failed = True
            continue
        if compiled.warnings:
            print(render_all(compiled.warnings, compiled.program.sources))
        print(f"{file}: ok ({len(compiled.warnings)} warning{'s' if len(compiled.warnings) != 1 else ''})")
        for recipe in compiled.recipes():
            bound = compiled.bounds[recipe_key(compiled.program, compiled.main, recipe.name)]
            if args.input:
                from sfdsl.api import Program

                bound = Program(compiled).recipe(recipe.name).bound(_text_inputs(recipe, args.input))
            params = ", ".join(f"{p.name}: {p.type}" for p in recipe.params)
            print(f"  recipe {recipe.name}({params})")
            print(f"    cost bound: {bound}")
    return EXIT_COMPILE if failed else 0


def _text_inputs(recipe: Any, pairs: list[str]) -> dict[str, Any]:
    from sfdsl.inputs import bind_inputs

    given = parse_inputs(pairs, None)
    names = {p.name for p in recipe.params}
    return bind_inputs(recipe, {k: v for k, v in given.items() if k in names}, from_text=True, require_all=False)


def cmd_graph(args: argparse.Namespace) -> int:
    from sfdsl.api import load
    from sfdsl.plan import dump, to_dot, to_mermaid

    recipe = load(args.file, import_path=args.import_path).recipe(args.recipe)
    render = {"mermaid": lambda p: to_mermaid(p, recipe.name), "dot": lambda p: to_dot(p, recipe.name),
              "text": dump}[args.format]
    print(render(recipe.plan))
    return 0


def _positive(kind: type[int] | type[float], *, zero: bool = False, maximum: float | None = None) -> Any:
    """An argparse type: a finite number above zero (or at least zero); see ``sfdsl.cli_values``."""
    return cli_values.positive(kind, zero=zero, maximum=maximum)


def add_admission_options(parser: argparse.ArgumentParser) -> None:
    """The per-request caps of `sfrun serve`: a request whose static bound is over one gets a 400."""
    from sfdsl.admission import SERVE_DEFAULTS

    caps = parser.add_argument_group("per-request caps (on the static bound, computed with the request's inputs)")
    caps.add_argument("--max-request-calls", type=_positive(int), default=SERVE_DEFAULTS.max_calls, metavar="N",
                      help=f"model calls one request may need ({SERVE_DEFAULTS.max_calls})")
    caps.add_argument("--max-request-tokens", type=_positive(int), default=SERVE_DEFAULTS.max_tokens, metavar="N",
                      help=f"generated tokens one request may need ({SERVE_DEFAULTS.max_tokens})")
    caps.add_argument("--max-request-parallel", type=_positive(int), default=SERVE_DEFAULTS.max_parallel, metavar="N",
                      help=f"sequences one request may decode at once ({SERVE_DEFAULTS.max_parallel})")
    caps.add_argument("--max-run-memory-mb", type=_positive(float), default=64.0, metavar="MB",
                      help="values one run may create (text, search states, loop bodies) before it stops with a "
                           "located error (64)")


def admission_config(args: argparse.Namespace) -> dict[str, Any]:
    """ServeConfig fields from the caps options."""
    return {"max_request_calls": args.max_request_calls, "max_request_tokens": args.max_request_tokens,
            "max_request_parallel": args.max_request_parallel,
            "max_run_memory_bytes": max(1, int(args.max_run_memory_mb * (1 << 20)))}


def caps_line(config: Any) -> str:
    """The start-up line that states the caps in force."""
    return (f"per-request caps: <= {config.max_request_calls} model calls, <= {config.max_request_tokens} generated "
            f"tokens, <= {config.max_request_parallel} sequences at once, <= {config.max_run_memory_bytes >> 20} MB "
            f"of values per run (--max-request-calls/-tokens/-parallel, --max-run-memory-mb); "
            f"pinned inputs: {', '.join(sorted(config.pinned)) or 'none'}")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sfdsl.serve import RecipeRegistry, ServeConfig, create_app, default_pool_factory
    from sfdsl.serve.server import bind_socket, uvicorn_config

    cache = None if args.no_cache else int(args.cache_max_mb * (1 << 20))
    fixed = parse_inputs(args.input, args.inputs_json)
    config = ServeConfig(max_concurrency=args.max_concurrency, max_queue=args.max_queue, timeout_s=args.timeout,
                         max_body_bytes=args.max_body_bytes, max_n=args.max_n, inputs=fixed,
                         cache_max_bytes=cache, pinned=parse_inputs(args.pin_input, None), **admission_config(args))
    registry = RecipeRegistry.from_path(args.path, import_path=args.import_path)
    app = create_app(registry, config=config,
                     make_pool=default_pool_factory(args.backend, model=args.model, cache_max_bytes=cache))
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:  # a host that does not resolve, a port in use or not allowed
        raise InputError(f"argument --host/--port: cannot listen on {args.host}:{args.port}: "
                         f"{exc.strerror or exc}") from None
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {len(registry)} recipes as models at http://{shown}:{port}/v1 (Ctrl-C stops)", flush=True)
    print(caps_line(config), flush=True)
    server = uvicorn.Server(uvicorn_config(app, host=args.host, port=port))
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
