"""Run implementations of the steps with bodies: vote N times, refine, map, call and search.

Each body runs from the plan compiled with its recipe (``bodies``); nothing is planned here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sfdsl.errors import StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.expressions import scalar
from sfdsl.inputs import bind_inputs
from sfdsl.runtime.executor import CONTROL, Frame, LoopState, StopLoop
from sfdsl.runtime.failures import pick, reraise
from sfdsl.runtime.model_steps import BODY_BYTES
from sfdsl.runtime.search import beam_search, mcts_search
from sfdsl.runtime.step_runs import vote_llm
from sfdsl.runtime.voting import Tally
from sfdsl.step_kind import with_defaults
from sfdsl.steps import map as map_step
from sfdsl.steps import refine as refine_step
from sfdsl.steps import search as search_step
from sfdsl.steps.call import CallRecipe
from sfdsl.steps.map import MapStep
from sfdsl.steps.vote_times import VoteTimes
from sfdsl.values import NoAnswer, RefineOutcome, plain

if TYPE_CHECKING:
    from sfdsl.plan import Plan
    from sfdsl.runtime.executor import Executor, RecipeState

Bodies = dict[str, "Plan"]
#: Bodies of one `vote N times` or `map` started and not yet finished; the next starts as one ends, so a
#: huge count never holds a task per iteration (the engine still batches every body that is running).
LIVE_BODIES = 256


async def run_vote_times(ex: Executor, state: RecipeState, node: VoteTimes, frame: Frame, path: tuple[str, ...],
                         bodies: Bodies) -> Any:
    count = int(scalar(eval_expr(node.count, frame.lookup)))
    opts = state.caller.args([a for a in node.args if a.name != "prompt"], frame.lookup)
    tally, plan = Tally(expected=count), bodies["body"]
    results: dict[int, Any] = {}  # filled as bodies finish: nothing is sized by the count up front
    tasks: set[asyncio.Task[None]] = set()
    live = asyncio.Semaphore(LIVE_BODIES)
    stopped = False

    async def one(i: int) -> None:
        nonlocal stopped
        loop = LoopState()
        await ex.block(state, plan, Frame(parent=frame, loop=loop), path + (f"#{i}",))
        results[i] = loop.yielded
        weight = loop.score if node.mode == "weighted" and loop.score is not None else 1.0
        tally.add(loop.yielded, weight)
        if node.mode != "llm" and not stopped and tally.decided(stop=opts.get("stop"), margin=opts.get("margin")):
            stopped = True
            ex.ctx.trace.emit("vote_decided", node_id="/".join(path), after=tally.seen, of=count)
            for task in tasks:
                task.cancel()

    try:
        async with asyncio.TaskGroup() as group:
            for i in range(count):
                await live.acquire()
                if stopped:
                    break
                ex.ctx.hold(BODY_BYTES, "/".join(path))
                task = group.create_task(one(i))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: live.release())  # also when cancelled before it started
                await ex.ctx.checkpoint()
    except* Exception as failed:
        reraise(pick(failed, CONTROL))
    if node.mode == "llm":
        return await vote_llm(state.caller, [results.get(i) for i in range(count)], node, frame.lookup, path)
    return tally.outcome(stopped_early=stopped and tally.seen < count)


async def run_refine(ex: Executor, state: RecipeState, node: refine_step.Refine, frame: Frame,
                     path: tuple[str, ...], bodies: Bodies) -> Any:
    opts = with_defaults(refine_step.PARAMS, state.caller.args(node.args, frame.lookup))
    rounds, keep = int(opts["max"]), str(opts["keep"])
    first = current = eval_expr(node.initial, frame.lookup)
    history: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    stopped, done_rounds, score = False, 0, None
    for r in range(rounds):
        loop = LoopState()
        inner = Frame(parent=frame, values={node.var: current, "history": list(history), "round": r}, loop=loop)
        try:
            await ex.block(state, bodies["body"], inner, path + (f"round{r}",))
        except StopLoop:
            stopped = True
        score = loop.score
        entry = {k: v for k, v in inner.values.items() if k != "history"}
        entry["score"] = score
        history.append(entry)
        done_rounds = r + 1
        if score is not None and (best is None or score > best[0]):
            best = (score, current)
        if stopped:
            break
        if not loop.has_next:
            raise StepError("refine body finished without `next`", location=str(node.span))
        current = loop.next
    if keep == "best" and best is not None and not stopped:
        score, current = best
    return RefineOutcome(value=current, score=score, rounds=done_rounds, history=tuple(history), first=first,
                         stopped=stopped)


async def run_map(ex: Executor, state: RecipeState, node: MapStep, frame: Frame, path: tuple[str, ...],
                  bodies: Bodies) -> Any:
    items = eval_expr(node.source, frame.lookup)
    if not isinstance(items, list):
        raise StepError("map needs a list", location=str(node.source.span))
    opts = with_defaults(map_step.PARAMS, state.caller.args(node.args, frame.lookup))
    if "limit" in opts and len(items) > int(opts["limit"]):
        kept = int(opts["limit"])
        dropped = len(items) - kept
        ex.ctx.trace.emit("map_truncated", node_id="/".join(path), location=str(node.span), kept=kept,
                          dropped=dropped)
        items = items[:kept]
    loops: list[LoopState] = []
    live = asyncio.Semaphore(LIVE_BODIES)

    try:
        async with asyncio.TaskGroup() as group:
            for i, item in enumerate(items):
                await live.acquire()
                ex.ctx.hold(BODY_BYTES, "/".join(path))
                loops.append(LoopState())
                inner = Frame(parent=frame, values={node.var: item}, loop=loops[-1])
                task = group.create_task(ex.block(state, bodies["body"], inner, path + (f"#{i}",)))
                task.add_done_callback(lambda _: live.release())
                await ex.ctx.checkpoint()
    except* Exception as failed:
        reraise(pick(failed, CONTROL))
    return [loop.yielded for loop in loops]


async def run_call(ex: Executor, state: RecipeState, node: CallRecipe, frame: Frame, path: tuple[str, ...],
                   bodies: Bodies) -> Any:
    found = ex.compiled.program.resolve_call(state.file, node.target)
    if found is None:
        raise StepError(f"unknown recipe {'.'.join(node.target)}", location=str(node.span))
    file, callee = found
    given = {a.name: plain(eval_expr(a.value, frame.lookup)) for a in node.args}
    inputs = bind_inputs(callee, given)
    ex.ctx.trace.emit("recipe_called", recipe=callee.name, node_id="/".join(path))
    return await ex.run_recipe(file, callee, inputs, path + (callee.name,))


async def run_search(ex: Executor, state: RecipeState, node: search_step.Search, frame: Frame,
                     path: tuple[str, ...], bodies: Bodies) -> Any:
    spec = search_step.STRATEGIES[node.strategy]
    opts = with_defaults(spec, state.caller.args(node.args, frame.lookup))
    counter = [0]

    async def run_part(part: str, state_text: str, depth: int) -> Any:
        counter[0] += 1
        loop = LoopState()
        inner = Frame(parent=frame, values={"state": state_text, "depth": depth}, loop=loop)
        await ex.block(state, bodies[part], inner, path + (f"{part}{counter[0]}",))
        return loop.yielded

    async def expand(text: str, depth: int) -> list[str]:
        steps = await run_part("expand", text, depth)
        return [str(scalar(s)) for s in (steps if isinstance(steps, list) else [steps])]

    async def value(text: str, depth: int) -> float:
        ex.ctx.hold(len(text) + BODY_BYTES, "/".join(path))  # each new search state is valued once
        v = scalar(await run_part("value", text, depth))
        return 0.0 if isinstance(v, NoAnswer) or v is None else float(v)

    root = str(scalar(eval_expr(node.root, frame.lookup)))
    if node.strategy == "mcts":
        return await mcts_search(root, expand, value, opts)
    return await beam_search(root, expand, value, opts)
