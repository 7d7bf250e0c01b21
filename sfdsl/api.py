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
from pathlib import Path
from typing import Any

from sfdsl import ast
from sfdsl.compiler import CompiledProgram, compile_file, compile_text, recipe_key
from sfdsl.cost import Bound, BoundError, recipe_bound
from sfdsl.diagnostics import with_suggestion
from sfdsl.errors import BudgetExceeded, CompileError, RecipeNotFoundError
from sfdsl.inputs import bind_inputs
from sfdsl.plan import Plan
from sfdsl.runtime import telemetry
from sfdsl.runtime.backends.base import Backend
from sfdsl.runtime.context import Budget, RunContext, Trace
from sfdsl.runtime.executor import Executor
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import RunResult


def load(path: str | Path) -> Program:
    """Load, check and plan a .sf file."""
    return Program(compile_file(path))


def compile(text: str, *, file: str = "<string>") -> Program:
    """Check and plan .sf source held in a string."""
    return Program(compile_text(text, file=file))


class Program:
    """A compiled .sf file. Owns a backend pool that its recipes share unless given their own."""

    def __init__(self, compiled: CompiledProgram) -> None:
        self.compiled = compiled
        self._pool: BackendPool | None = None

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

    def pool(self) -> BackendPool:
        if self._pool is None:
            self._pool = BackendPool()
        return self._pool

    async def aclose(self) -> None:
        """Release the models this program loaded."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


class Recipe:
    """One runnable recipe."""

    def __init__(self, program: Program, recipe: ast.Recipe) -> None:
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
            return recipe_bound(self.program.compiled.program, self.file, self.ast, bound)
        except BoundError as exc:
            raise CompileError(diagnostics=[exc.diagnostic], sources=self.program.compiled.program.sources) from None

    async def arun(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        backend: Backend | BackendPool | None = None,
        seed: int = 0,
        budget: Budget | None = None,
        trace: str | Path | None = None,
        from_text: bool = False,
        **kw_inputs: Any,
    ) -> RunResult:
        """Run the recipe in the current event loop.

        Raises:
            InputError: for unknown, missing or mistyped inputs.
            BackendError: when a model backend fails.
            BudgetExceeded: when the run exceeds its budget; ``partial`` holds what was done.
        """
        given = {**(inputs or {}), **kw_inputs}
        bound_inputs = bind_inputs(self.ast, given, from_text=from_text)
        pool = backend if isinstance(backend, BackendPool) else BackendPool(backend=backend) if backend else \
            self.program.pool()
        run_id = uuid.uuid4().hex[:12]
        budget = budget or Budget()
        ctx = RunContext(run_id=run_id, seed=seed, budget=budget, trace=Trace(trace, run_id=run_id))
        static = self.bound(bound_inputs)
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
            raise BudgetExceeded(f"wall-clock budget of {budget.timeout_s}s exceeded", partial=ctx.partial()) from None
        except BaseException as exc:
            ctx.trace.emit("run_failed", reason=type(exc).__name__, message=str(exc))
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
        )
        ctx.trace.emit("run_finished", recipe=self.name, calls=ctx.cost.calls,
                       completion_tokens=ctx.cost.completion_tokens, wall_s=ctx.cost.wall_s)
        ctx.trace.close()
        return result

    def run(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> RunResult:
        """Run the recipe synchronously; safe to call from inside a running event loop."""
        own_pool = "backend" not in kwargs or kwargs["backend"] is None

        async def go() -> RunResult:
            pool = BackendPool() if own_pool else kwargs.pop("backend")
            try:
                return await self.arun(inputs, backend=pool, **{k: v for k, v in kwargs.items() if k != "backend"})
            finally:
                if own_pool:
                    await pool.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(go())
        box: dict[str, Any] = {}

        def worker() -> None:
            try:
                box["result"] = asyncio.run(go())
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=worker, name=f"sfdsl-run-{self.name}")
        thread.start()
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["result"]  # type: ignore[no-any-return]
