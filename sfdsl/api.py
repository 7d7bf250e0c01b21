"""The Python API: load or compile a program, then run its recipes, sync or async.

Example:
    >>> import sfdsl
    >>> from sfdsl.runtime.backends.scripted import ScriptedBackend
    >>> program = sfdsl.compile('''
    ... recipe echo(q: str) -> answer {
    ...   prompt p = "Say {{ q }}"
    ...   said = generate p (max_tokens: 8)
    ...   return said
    ... }''')
    >>> program.recipe().run(q="hi", backend=ScriptedBackend(["hi"])).answer
    'hi'
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import structlog

from sfdsl import ast
from sfdsl.admission import Admitted, Caps, admit
from sfdsl.compiler import CompiledProgram, compile_file, compile_text, recipe_key
from sfdsl.cost import Bound, BoundError, recipe_bound
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import (
    BudgetExceeded,
    CompileError,
    InternalError,
    RecipeNotFoundError,
    SfdslError,
    SourceNotFoundError,
)
from sfdsl.inputs import bind_inputs
from sfdsl.plan import Plan
from sfdsl.runtime import telemetry
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.context import Budget, RunContext, Trace
from sfdsl.runtime.executor import Executor
from sfdsl.runtime.failures import as_sfdsl_error, reraise
from sfdsl.runtime.pool import BackendPool, pool_from_spec
from sfdsl.runtime.results import RunResult
from sfdsl.runtime.session import Runtime, refuse_running_loop
from sfdsl.runtime.token_stream import TokenSink, streamed_generate

T = TypeVar("T")


def load(path: str | Path, *, import_path: Sequence[str | Path] = ()) -> Program:
    """Load, check and plan a .sf file; imports may also read the ``import_path`` directories.

    Raises:
        SourceNotFoundError: when the file (or a file it imports) cannot be read.
        CompileError: with every syntax and semantic error found.
    """
    return Program(_typed(lambda: compile_file(path, import_path=import_path), str(path)))


def compile(text: str, *, file: str = "<string>", import_path: Sequence[str | Path] = ()) -> Program:
    """Check and plan .sf source held in a string.

    Raises:
        CompileError: with every syntax and semantic error found.
    """
    return Program(_typed(lambda: compile_text(text, file=file, import_path=import_path), file))


def _typed(build: Callable[[], T], file: str) -> T:
    """Let only sfdsl errors out of the front end: unreadable files and unexpected failures are translated."""
    try:
        return build()
    except SfdslError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceNotFoundError(f"cannot read {file}: {exc}") from exc
    except Exception as exc:
        raise InternalError(f"{file}: compiling failed unexpectedly: {type(exc).__name__}: {exc}") from exc


class Program:
    """A compiled .sf file. Its recipes run on a default Runtime, created on first use, unless given one."""

    def __init__(self, compiled: CompiledProgram) -> None:
        self.compiled = compiled
        self._runtime: Runtime | None = None
        self._runtime_lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.compiled.recipes()]

    @property
    def warnings(self) -> list[Any]:
        return list(self.compiled.warnings)

    def recipe(self, name: str | None = None) -> Recipe:
        """A recipe of the main file by name; without a name, the file's last recipe.

        Raises:
            RecipeNotFoundError: naming the recipes the file has.
        """
        recipes = self.compiled.recipes()
        if not recipes:
            raise RecipeNotFoundError(f"{self.compiled.main} declares no recipe")
        if name is None:
            return Recipe(self, recipes[-1])
        for recipe in recipes:
            if recipe.name == name:
                return Recipe(self, recipe)
        message = with_suggestion(f"no recipe '{name}' in {self.compiled.main}", name, self.names)
        raise RecipeNotFoundError(f"{message}; recipes: {', '.join(self.names)}")

    def runtime(self) -> Runtime:
        """This program's default runtime (models load once and serve every run until it closes)."""
        with self._runtime_lock:
            if self._runtime is None or self._runtime.closed:
                self._runtime = Runtime()
            return self._runtime

    def pool(self) -> BackendPool:
        """The backend pool of the default runtime."""
        return self.runtime().pool

    def close(self) -> None:
        """Release the models the default runtime loaded (it is also released at interpreter exit)."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    async def aclose(self) -> None:
        """Release the models the default runtime loaded, from async code."""
        if self._runtime is not None:
            await self._runtime.aclose()
            self._runtime = None


class Recipe:
    """One runnable recipe."""

    def __init__(self, program: Program, recipe: ast.RecipeDecl) -> None:
        self.program = program
        self.ast = recipe
        self.name = recipe.name
        self.file = program.compiled.main

    @property
    def params(self) -> list[tuple[str, str, Any]]:
        """(name, type, default) of each input; default is None when required."""
        from sfdsl.expressions import evaluate

        return [(p.name, str(p.type), evaluate(p.default, lambda n: None) if p.default else None)
                for p in self.ast.params]

    @property
    def fingerprint(self) -> str:
        return self.program.compiled.program.fingerprint() + ":" + self.name

    @property
    def plan(self) -> Plan:
        return self.program.compiled.plans[recipe_key(self.program.compiled.program, self.file, self.name)]

    def bound(self, inputs: dict[str, Any] | None = None) -> Bound:
        """The static worst-case cost of a run with these inputs."""
        bound = bind_inputs(self.ast, inputs or {}, require_all=False)
        try:
            return recipe_bound(self.program.compiled.program, self.file, self.ast, bound,
                                plans=self.program.compiled.plans)
        except BoundError as exc:
            raise CompileError(diagnostics=[exc.diagnostic], sources=self.program.compiled.program.sources) from None

    def admit(self, inputs: dict[str, Any] | None = None, caps: Caps | None = None, *,
              pinned: dict[str, Any] | None = None, strict: bool = False) -> Admitted:
        """Bind ``inputs`` and check the run against ``caps`` before it starts (see ``sfdsl.admission.admit``).

        Raises:
            InputError: for bad inputs, an override of a pinned input, or a step parameter out of range.
            OverCapError: when the run's static bound with these inputs is over a cap.
        """
        return admit(self, inputs or {}, caps, pinned=pinned, strict=strict)

    async def arun(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        caps: Caps | None = None,
        backend: Backend | BackendPool | str | None = None,
        runtime: Runtime | None = None,
        seed: int = 0,
        budget: Budget | None = None,
        trace: str | Path | None = None,
        from_text: bool = False,
        on_token: TokenSink | None = None,
        **kw_inputs: Any,
    ) -> RunResult:
        """Run the recipe in the current event loop.

        Models come from ``backend`` when given (a backend, a pool, or a ``--backend``
        spec string such as ``"scripted:replies.json"`` or ``"openai:URL"``, whose
        backends this run builds and closes), else from ``runtime``, else from
        the program's default runtime. ``on_token`` receives the answer's text
        piece by piece as it decodes, when the answer is a single sample of one
        ``generate`` (``sfdsl.runtime.token_stream``); otherwise it is not called.
        Every error is an SfdslError located at the failing step
        (``error.location``), the original exception as ``__cause__``.
        With ``caps``, the run is first admitted by its static bound (``Recipe.admit``).

        Raises:
            InputError: for unknown, missing or mistyped inputs.
            OverCapError: when ``caps`` are given and the run's bound is over one of them.
            BackendError: when a model backend fails.
            StepError: when a step fails (any foreign exception is wrapped in one).
            BudgetExceeded: when the run exceeds its budget; ``partial`` holds what was done.
        """
        given = {**(inputs or {}), **kw_inputs}
        bound_inputs = bind_inputs(self.ast, given, from_text=from_text)
        if isinstance(backend, str):
            pool = pool_from_spec(backend)
            try:
                return await self.arun(given, caps=caps, backend=pool, runtime=runtime, seed=seed, budget=budget,
                                       trace=trace, from_text=from_text, on_token=on_token)
            finally:
                await pool.aclose()
        admitted = admit(self, bound_inputs, caps) if caps is not None else None
        if isinstance(backend, BackendPool):
            pool = backend
        elif backend is not None:
            pool = BackendPool(backend=backend)
        else:
            pool = (runtime or self.program.runtime()).pool
        run_id = uuid.uuid4().hex[:12]
        budget = budget or Budget()
        ctx = RunContext(run_id=run_id, seed=seed, budget=budget, trace=Trace(trace, run_id=run_id),
                         token_sink=on_token, streamed=streamed_generate(self.ast) if on_token else None)
        static = admitted.bound if admitted is not None else self.bound(bound_inputs)
        where = str(self.ast.span)
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            ctx.trace.emit("run_started", recipe=self.name, seed=seed, bound_calls=static.calls,
                           bound_tokens=static.tokens)
            executor = Executor(self.program.compiled, ctx, pool)
            span = telemetry.workflow(self.name, run_id=run_id, seed=seed, inputs=bound_inputs)
            try:
                with span as recorder:
                    async with asyncio.timeout(budget.timeout_s):
                        outcome = await executor.run(self.file, self.ast, bound_inputs)
                    recorder.finished(outcome, ctx.cost)
            except TimeoutError:
                ctx.trace.emit("run_failed", reason="timeout")
                ctx.trace.close()
                timeout = BudgetExceeded(f"wall-clock budget of {budget.timeout_s}s exceeded",
                                         partial=ctx.partial("timeout"))
                timeout.locate(where)
                raise timeout from None
            except Exception as exc:
                error = as_sfdsl_error(exc, location=where)
                ctx.trace.emit("run_failed", reason=type(error).__name__, message=str(error),
                               location=error.location)
                ctx.trace.close()
                reraise(error)
            except BaseException as exc:  # cancelled: say what the run had spent
                ctx.trace.emit("run_failed", reason=type(exc).__name__, message=str(exc), calls=ctx.cost.calls,
                               prompt_tokens=ctx.cost.prompt_tokens, completion_tokens=ctx.cost.completion_tokens,
                               wall_s=ctx.elapsed())
                ctx.trace.close()
                raise
            finally:
                ctx.cost.wall_s = ctx.elapsed()
            result = RunResult(
                run_id=run_id, recipe=self.name, answer=outcome.answer, score=outcome.score,
                abstained=outcome.abstained, reason=outcome.reason,
                outputs={"answer": outcome.answer, "score": outcome.score, **outcome.outputs},
                steps=ctx.steps, cost=ctx.cost, seed=seed,
                bound={"calls": static.calls, "tokens": static.tokens, "parallel": static.parallel},
                truncated=outcome.truncated,
                tool_calls=list(outcome.tool_calls),
            )
            ctx.trace.emit("run_finished", recipe=self.name, calls=ctx.cost.calls,
                           completion_tokens=ctx.cost.completion_tokens, wall_s=ctx.cost.wall_s)
            ctx.trace.close()
        return result

    def run(self, inputs: dict[str, Any] | None = None, *, runtime: Runtime | None = None,
            **kwargs: Any) -> RunResult:
        """Run the recipe synchronously on ``runtime`` (default: the program's), reusing its loaded models.

        Takes the keyword arguments of ``arun``.

        Raises:
            EventLoopError: when called inside a running event loop (a RuntimeError too);
                ``await recipe.arun(...)`` there instead.
        """
        refuse_running_loop("recipe.run(...)")
        return (runtime or self.program.runtime()).run(self, inputs, **kwargs)
