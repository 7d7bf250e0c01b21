"""Executes plans with asyncio: a node runs once its dependencies finish, all tasks in task groups."""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sfdsl import ast
from sfdsl.compiler import CompiledProgram, recipe_key
from sfdsl.errors import StepError
from sfdsl.expressions import ExprError, scalar, truthy
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.plan import Plan, reads, writes
from sfdsl.registry import runners
from sfdsl.runtime import telemetry
from sfdsl.runtime.context import RunContext
from sfdsl.runtime.failures import as_sfdsl_error, pick, reraise
from sfdsl.runtime.model_steps import ModelCaller
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import Cost, StepRecord
from sfdsl.values import CallOutcome, NoAnswer, Record, plain, split_actions

Bodies = dict[str, Plan]
_node_cost: contextvars.ContextVar[Cost | None] = contextvars.ContextVar("sfdsl_node_cost", default=None)


class Exit(Exception):
    """A recipe returned or abstained; unwinds its blocks and cancels unfinished siblings."""

    def __init__(self, outcome: CallOutcome) -> None:
        super().__init__("exit")
        self.outcome = outcome


class StopLoop(Exception):
    """A refine body's `stop when` held."""


CONTROL = (Exit, StopLoop)


@dataclass
class LoopState:
    next: Any = None
    has_next: bool = False
    score: float | None = None
    yielded: Any = None
    has_yield: bool = False


@dataclass
class Frame:
    """Values visible to a block: its own and its parents'."""

    parent: Frame | None = None
    values: dict[str, Any] = field(default_factory=dict)
    loop: LoopState | None = None
    truncated: set[str] = field(default_factory=set)  # names whose value a token limit cut short

    def is_truncated(self, name: str) -> bool:
        """Whether ``name``'s value came (through any steps) from a generation cut short by its token limit."""
        frame: Frame | None = self
        while frame is not None:
            if name in frame.values:
                return name in frame.truncated
            frame = frame.parent
        return False

    def lookup(self, name: str) -> Any:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.values:
                return frame.values[name]
            frame = frame.parent
        raise StepError(f"'{name}' has no value yet")

    def nearest_loop(self) -> LoopState:
        frame: Frame | None = self
        while frame is not None:
            if frame.loop is not None:
                return frame.loop
            frame = frame.parent
        raise StepError("loop statement outside a loop")


@dataclass
class RecipeState:
    """One running recipe: where it is defined and how its steps reach models."""

    file: str
    recipe: ast.RecipeDecl
    caller: ModelCaller


class Executor:
    """Runs recipes of one compiled program for one run context."""

    def __init__(self, compiled: CompiledProgram, ctx: RunContext, pool: BackendPool) -> None:
        self.compiled, self.ctx, self.pool = compiled, ctx, pool
        self.runners = runners()

    async def run(self, file: str, recipe: ast.RecipeDecl, inputs: dict[str, Any]) -> CallOutcome:
        return await self.run_recipe(file, recipe, inputs, (recipe.name,))

    async def run_recipe(self, file: str, recipe: ast.RecipeDecl, inputs: dict[str, Any],
                         path: tuple[str, ...]) -> CallOutcome:
        key = recipe_key(self.compiled.program, file, recipe.name)
        plan = self.compiled.plans.get(key)
        if plan is None:
            raise StepError(f"recipe '{recipe.name}' has no compiled plan", location=str(recipe.span))
        caller = ModelCaller(self.ctx, self.pool, plan.models, plan.prompts, self._charge)
        state = RecipeState(file, recipe, caller)
        try:
            await self.block(state, plan, Frame(values=dict(inputs)), path)
        except Exit as done:
            return done.outcome
        raise StepError(f"recipe '{recipe.name}' ended without return")

    def _charge(self, **kw: Any) -> None:
        cost = self.ctx.charge(**kw)
        node_cost = _node_cost.get()
        if node_cost is not None:
            node_cost.add(cost)

    # ------------------------------------------------------------ blocks and nodes

    async def block(self, state: RecipeState, plan: Plan, frame: Frame, path: tuple[str, ...]) -> None:
        await self.ctx.checkpoint()
        done = {node_id: asyncio.Event() for node_id in plan.order}
        try:
            async with asyncio.TaskGroup() as group:
                for node_id in plan.order:
                    group.create_task(self.node(state, plan, node_id, frame, path, done))
        except* Exception as failed:
            reraise(pick(failed, CONTROL))

    async def node(self, state: RecipeState, plan: Plan, node_id: str, frame: Frame, path: tuple[str, ...],
                   done: dict[str, asyncio.Event]) -> None:
        for pred in plan.graph.predecessors(node_id):
            await done[pred].wait()
        await self.ctx.checkpoint()
        data = plan.graph.nodes[node_id]
        stmt = data["stmt"]
        node_path = path + (node_id,)
        location = str(stmt.span)
        record = StepRecord(node_id="/".join(node_path), kind=data["kind"], location=location,
                            started_s=self.ctx.elapsed())
        record.inputs = {n: plain(_safe_lookup(frame, n)) for n in sorted(reads(stmt, state.caller.prompts))}
        token = _node_cost.set(record.cost)
        self.ctx.trace.emit("node_started", node_id=record.node_id, kind=data["kind"], location=location)
        started = time.perf_counter()
        try:
            with telemetry.step(record.node_id, data["kind"], stmt.span):
                output = await self.statement(state, stmt, frame, node_path, data["bodies"])
            record.output = plain(output)
            if self._cut_short(stmt, frame, node_path, state):
                frame.truncated.update(writes(stmt))
        except Exit as leaving:
            record.output = "exit"
            if stmt.stmt == "return" and self._cut_short(stmt, frame, node_path, state):
                leaving.outcome = replace(leaving.outcome, truncated=True)
            raise
        except StopLoop:
            record.output = "exit"
            raise
        except ExprError as exc:
            record.error = str(exc)
            raise StepError(str(exc), node_id=record.node_id, location=str(exc.node.span)) from None
        except Exception as exc:
            failure = pick(exc, CONTROL)
            if isinstance(failure, CONTROL):
                record.output = "exit"
                reraise(failure)
            error = as_sfdsl_error(failure, location=location, node_id=record.node_id)
            record.error = str(error)
            reraise(error)
        finally:
            record.wall_s = time.perf_counter() - started
            _node_cost.reset(token)
            self.ctx.steps.append(record)
            self.ctx.trace.emit("node_finished", node_id=record.node_id, kind=data["kind"], wall_s=record.wall_s,
                                calls=record.cost.calls, completion_tokens=record.cost.completion_tokens,
                                cached_prompt_tokens=record.cost.cached_prompt_tokens, error=record.error)
        done[node_id].set()

    def _cut_short(self, stmt: Any, frame: Frame, path: tuple[str, ...], state: RecipeState) -> bool:
        """Whether a statement's value (a return's answer) comes from a generation its token limit cut short."""
        read = stmt
        if stmt.stmt == "return" and stmt.fields is not None:
            read = [f.value for f in stmt.fields if f.name in ("answer", "tool_calls")] or stmt
        if self.ctx.truncated_under(path):
            return True
        return any(frame.is_truncated(name) for name in reads(read, state.caller.prompts))

    async def statement(self, state: RecipeState, stmt: Any, frame: Frame, path: tuple[str, ...],
                        bodies: Bodies) -> Any:
        kind = stmt.stmt
        if kind == "assign":
            value = await self.rhs(state, stmt.value, frame, path, bodies)
            frame.values[stmt.target] = value
            return value
        if kind == "if":
            branch = bodies.get("then" if truthy(eval_expr(stmt.cond, frame.lookup)) else "else")
            if branch is not None:
                inner = Frame(parent=frame)
                await self.block(state, branch, inner, path)
                for name in writes(stmt):
                    frame.values[name] = inner.values.get(name)
            return None
        if kind == "return":
            raise Exit(await self.return_outcome(state, stmt, frame, path, bodies))
        if kind == "abstain":
            fields = {f.name: eval_expr(f.value, frame.lookup) for f in stmt.fields}
            reason = str(scalar(fields.pop("reason", "abstained")))
            raise Exit(_outcome(fields, abstained=True, reason=reason))
        loop = frame.nearest_loop()
        if kind == "stop":
            if truthy(eval_expr(stmt.cond, frame.lookup)):
                raise StopLoop()
            return None
        if kind == "score":
            value = scalar(eval_expr(stmt.value, frame.lookup))
            loop.score = None if isinstance(value, NoAnswer) else float(value)
            return loop.score
        value = await self.rhs(state, stmt.value, frame, path, bodies)
        if kind == "next":
            loop.next, loop.has_next = value, True
        else:
            loop.yielded, loop.has_yield = value, True
        return value

    async def return_outcome(self, state: RecipeState, stmt: ast.Return, frame: Frame,
                             path: tuple[str, ...], bodies: Bodies) -> CallOutcome:
        if stmt.fields is not None:
            return _outcome({f.name: eval_expr(f.value, frame.lookup) for f in stmt.fields})
        value = await self.rhs(state, stmt.value, frame, path, bodies)
        if isinstance(value, CallOutcome):
            return value
        if isinstance(value, Record):
            return _outcome(value.as_result())
        return _outcome({"answer": value})

    # ------------------------------------------------------------ steps

    async def rhs(self, state: RecipeState, node: Any, frame: Frame, path: tuple[str, ...], bodies: Bodies) -> Any:
        """A plain expression's value, or a step run by its kind's implementation (sfdsl/registry.py)."""
        if not ast.is_step(node):
            return eval_expr(node, frame.lookup)
        return await self.runners[node.kind](self, state, node, frame, path, bodies)


def _outcome(fields: dict[str, Any], *, abstained: bool = False, reason: str | None = None) -> CallOutcome:
    answer, calls = split_actions(fields.pop("answer", None), fields.pop("tool_calls", None))
    if calls:
        fields["tool_calls"] = [call.model_dump() for call in calls]
    score = fields.pop("score", None)
    score = scalar(score)
    return CallOutcome(
        answer=plain(answer) if not isinstance(answer, NoAnswer) else None,
        score=None if score is None or isinstance(score, NoAnswer) else float(score),
        abstained=abstained,
        reason=reason,
        outputs={k: plain(v) for k, v in fields.items()},
        tool_calls=tuple(calls),
    )


def _safe_lookup(frame: Frame, name: str) -> Any:
    try:
        return frame.lookup(name)
    except StepError:
        return None
