"""Executes plans with asyncio: a node runs once its dependencies finish, all tasks in task groups."""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

from sfdsl import ast
from sfdsl.compiler import CompiledProgram, recipe_key
from sfdsl.errors import StepError
from sfdsl.expressions import ExprError, scalar, truthy
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.inputs import bind_inputs
from sfdsl.plan import Plan, build_plan, collect_models, collect_prompts, reads, writes
from sfdsl.runtime import telemetry
from sfdsl.runtime.context import RunContext
from sfdsl.runtime.extract import extract
from sfdsl.runtime.failures import as_sfdsl_error, pick, reraise
from sfdsl.runtime.model_steps import ModelCaller
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.results import Cost, StepRecord
from sfdsl.runtime.search import beam_search, mcts_search
from sfdsl.runtime.voting import Tally, vote
from sfdsl.values import CallOutcome, NoAnswer, RefineOutcome, Score, SearchOutcome, VoteOutcome, plain

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
    file: str
    recipe: ast.Recipe
    caller: ModelCaller
    plans: dict[int, Plan] = field(default_factory=dict)

    def plan(self, block: ast.Block) -> Plan:
        key = id(block)
        if key not in self.plans:
            self.plans[key] = build_plan(block, self.caller.prompts)
        return self.plans[key]


class Executor:
    """Runs recipes of one compiled program for one run context."""

    def __init__(self, compiled: CompiledProgram, ctx: RunContext, pool: BackendPool) -> None:
        self.compiled, self.ctx, self.pool = compiled, ctx, pool

    async def run(self, file: str, recipe: ast.Recipe, inputs: dict[str, Any]) -> CallOutcome:
        return await self.run_recipe(file, recipe, inputs, (recipe.name,))

    async def run_recipe(self, file: str, recipe: ast.Recipe, inputs: dict[str, Any],
                         path: tuple[str, ...]) -> CallOutcome:
        prompts, models = collect_prompts(recipe.body), collect_models(recipe.body)
        caller = ModelCaller(self.ctx, self.pool, models, prompts, self._charge)
        state = RecipeState(file, recipe, caller)
        key = recipe_key(self.compiled.program, file, recipe.name)
        plan = self.compiled.plans.get(key) or build_plan(recipe.body, prompts)
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
                output = await self.statement(state, stmt, frame, node_path)
            record.output = plain(output)
        except (Exit, StopLoop):
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

    async def statement(self, state: RecipeState, stmt: Any, frame: Frame, path: tuple[str, ...]) -> Any:
        kind = stmt.stmt
        if kind == "assign":
            value = await self.rhs(state, stmt.value, frame, path)
            frame.values[stmt.target] = value
            return value
        if kind == "if":
            branch = stmt.then if truthy(eval_expr(stmt.cond, frame.lookup)) else stmt.orelse
            if branch is not None:
                inner = Frame(parent=frame)
                await self.block(state, state.plan(branch), inner, path)
                for name in writes(stmt):
                    frame.values[name] = inner.values.get(name)
            return None
        if kind == "return":
            raise Exit(await self.return_outcome(state, stmt, frame, path))
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
        value = await self.rhs(state, stmt.value, frame, path)
        if kind == "next":
            loop.next, loop.has_next = value, True
        else:
            loop.yielded, loop.has_yield = value, True
        return value

    async def return_outcome(self, state: RecipeState, stmt: ast.Return, frame: Frame,
                             path: tuple[str, ...]) -> CallOutcome:
        if stmt.fields is not None:
            return _outcome({f.name: eval_expr(f.value, frame.lookup) for f in stmt.fields})
        value = await self.rhs(state, stmt.value, frame, path)
        if isinstance(value, VoteOutcome):
            return _outcome({"answer": value.answer, "score": value.share})
        if isinstance(value, RefineOutcome):
            return _outcome({"answer": value.value, "score": value.score, "first": value.first})
        if isinstance(value, Score):
            return _outcome({"answer": value.label, "score": value.score})
        if isinstance(value, CallOutcome):
            return value
        if isinstance(value, SearchOutcome):
            return _outcome({"answer": value.best})
        return _outcome({"answer": value})

    # ------------------------------------------------------------ steps

    async def rhs(self, state: RecipeState, node: Any, frame: Frame, path: tuple[str, ...]) -> Any:
        if not ast.is_step(node):
            return eval_expr(node, frame.lookup)
        handler = getattr(self, f"step_{node.kind}")
        return await handler(state, node, frame, path)

    async def step_generate(self, state: RecipeState, node: ast.Generate, frame: Frame, path: tuple[str, ...]) -> Any:
        return await state.caller.generate(node, frame.lookup, path)

    async def step_deepen(self, state: RecipeState, node: ast.Deepen, frame: Frame, path: tuple[str, ...]) -> Any:
        return await state.caller.deepen(node, frame.lookup, path)

    async def step_evaluate(self, state: RecipeState, node: ast.Evaluate, frame: Frame, path: tuple[str, ...]) -> Any:
        return await state.caller.evaluate(node, frame.lookup, path)

    async def step_extract(self, state: RecipeState, node: ast.Extract, frame: Frame, path: tuple[str, ...]) -> Any:
        opts = state.caller.args(node.args, frame.lookup)
        choices = [str(scalar(c)) for c in eval_expr(node.choices, frame.lookup)] if node.choices else None
        return extract(
            node.mode,
            eval_expr(node.source, frame.lookup),
            pattern=(node.pattern.pattern, node.pattern.flags) if node.pattern else None,
            choices=choices,
            after=(node.after.pattern, node.after.flags) if node.after else None,
            case=str(opts.get("case", "lower")),
            strip=bool(opts.get("strip", True)),
            last=bool(opts.get("last", True)),
        )

    async def step_vote(self, state: RecipeState, node: ast.Vote, frame: Frame, path: tuple[str, ...]) -> Any:
        values = eval_expr(node.source, frame.lookup)
        if not isinstance(values, list):
            raise StepError("vote needs a list of answers", location=str(node.span))
        if node.mode == "llm":
            return await state.caller.vote_llm(values, node, frame.lookup, path)
        opts = state.caller.args(node.args, frame.lookup)
        weights = opts.get("weights")
        return vote(values, [float(scalar(w)) for w in weights] if weights is not None else None)

    async def step_vote_times(self, state: RecipeState, node: ast.VoteTimes, frame: Frame,
                              path: tuple[str, ...]) -> Any:
        count = int(scalar(eval_expr(node.count, frame.lookup)))
        opts = state.caller.args([a for a in node.args if a.name != "prompt"], frame.lookup)
        tally, plan, results = Tally(expected=count), state.plan(node.body), [None] * count
        tasks: list[asyncio.Task[None]] = []
        stopped = False

        async def one(i: int) -> None:
            nonlocal stopped
            inner = Frame(parent=frame, loop=LoopState())
            await self.block(state, plan, inner, path + (f"#{i}",))
            assert inner.loop is not None
            results[i] = inner.loop.yielded
            weight = inner.loop.score if node.mode == "weighted" and inner.loop.score is not None else 1.0
            tally.add(inner.loop.yielded, weight)
            if node.mode != "llm" and not stopped and tally.decided(stop=opts.get("stop"), margin=opts.get("margin")):
                stopped = True
                self.ctx.trace.emit("vote_decided", node_id="/".join(path), after=tally.seen, of=count)
                for task in tasks:
                    task.cancel()

        try:
            async with asyncio.TaskGroup() as group:
                tasks.extend(group.create_task(one(i)) for i in range(count))
        except* Exception as failed:
            reraise(pick(failed, CONTROL))
        if node.mode == "llm":
            return await state.caller.vote_llm(results, node, frame.lookup, path)
        return tally.outcome(stopped_early=stopped and tally.seen < count)

    async def step_refine(self, state: RecipeState, node: ast.Refine, frame: Frame, path: tuple[str, ...]) -> Any:
        opts = state.caller.args(node.args, frame.lookup)
        rounds, keep = int(opts["max"]), str(opts.get("keep", "last"))
        first = current = eval_expr(node.initial, frame.lookup)
        history: list[dict[str, Any]] = []
        best: tuple[float, Any] | None = None
        stopped, done_rounds, score = False, 0, None
        plan = state.plan(node.body)
        for r in range(rounds):
            inner = Frame(parent=frame, values={node.var: current, "history": list(history), "round": r},
                          loop=LoopState())
            try:
                await self.block(state, plan, inner, path + (f"round{r}",))
            except StopLoop:
                stopped = True
            assert inner.loop is not None
            score = inner.loop.score
            entry = {k: v for k, v in inner.values.items() if k != "history"}
            entry["score"] = score
            history.append(entry)
            done_rounds = r + 1
            if score is not None and (best is None or score > best[0]):
                best = (score, current)
            if stopped:
                break
            if not inner.loop.has_next:
                raise StepError("refine body finished without `next`", location=str(node.span))
            current = inner.loop.next
        if keep == "best" and best is not None and not stopped:
            score, current = best
        return RefineOutcome(value=current, score=score, rounds=done_rounds, history=tuple(history), first=first,
                             stopped=stopped)

    async def step_map(self, state: RecipeState, node: ast.MapStep, frame: Frame, path: tuple[str, ...]) -> Any:
        items = eval_expr(node.source, frame.lookup)
        if not isinstance(items, list):
            raise StepError("map needs a list", location=str(node.source.span))
        opts = state.caller.args(node.args, frame.lookup)
        if "limit" in opts:
            items = items[: int(opts["limit"])]
        plan = state.plan(node.body)
        frames = [Frame(parent=frame, values={node.var: item}, loop=LoopState()) for item in items]
        try:
            async with asyncio.TaskGroup() as group:
                for i, inner in enumerate(frames):
                    group.create_task(self.block(state, plan, inner, path + (f"#{i}",)))
        except* Exception as failed:
            reraise(pick(failed, CONTROL))
        return [f.loop.yielded for f in frames if f.loop is not None]

    async def step_call(self, state: RecipeState, node: ast.CallRecipe, frame: Frame, path: tuple[str, ...]) -> Any:
        found = self.compiled.program.resolve_call(state.file, node.target)
        if found is None:
            raise StepError(f"unknown recipe {'.'.join(node.target)}", location=str(node.span))
        file, callee = found
        given = {a.name: plain(eval_expr(a.value, frame.lookup)) for a in node.args}
        inputs = bind_inputs(callee, given)
        self.ctx.trace.emit("recipe_called", recipe=callee.name, node_id="/".join(path))
        return await self.run_recipe(file, callee, inputs, path + (callee.name,))

    async def step_search(self, state: RecipeState, node: ast.Search, frame: Frame, path: tuple[str, ...]) -> Any:
        opts = state.caller.args(node.args, frame.lookup)
        parts = {p.name: state.plan(p.body) for p in node.parts}
        counter = [0]

        async def run_part(part: str, state_text: str, depth: int) -> Any:
            counter[0] += 1
            inner = Frame(parent=frame, values={"state": state_text, "depth": depth}, loop=LoopState())
            await self.block(state, parts[part], inner, path + (f"{part}{counter[0]}",))
            assert inner.loop is not None
            return inner.loop.yielded

        async def expand(text: str, depth: int) -> list[str]:
            steps = await run_part("expand", text, depth)
            return [str(scalar(s)) for s in (steps if isinstance(steps, list) else [steps])]

        async def value(text: str, depth: int) -> float:
            v = scalar(await run_part("value", text, depth))
            return 0.0 if isinstance(v, NoAnswer) or v is None else float(v)

        root = str(scalar(eval_expr(node.root, frame.lookup)))
        if node.strategy == "mcts":
            return await mcts_search(root, expand, value, opts)
        return await beam_search(root, expand, value, opts)


def _outcome(fields: dict[str, Any], *, abstained: bool = False, reason: str | None = None) -> CallOutcome:
    answer = fields.pop("answer", None)
    score = fields.pop("score", None)
    score = scalar(score)
    return CallOutcome(
        answer=plain(answer) if not isinstance(answer, NoAnswer) else None,
        score=None if score is None or isinstance(score, NoAnswer) else float(score),
        abstained=abstained,
        reason=reason,
        outputs={k: plain(v) for k, v in fields.items()},
    )


def _safe_lookup(frame: Frame, name: str) -> Any:
    try:
        return frame.lookup(name)
    except StepError:
        return None
