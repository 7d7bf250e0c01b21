"""Run implementations of the steps without a body (sfdsl/steps/ names them): the model steps generate, deepen
and evaluate (through the recipe's ModelCaller), and extract and vote, which compute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfdsl.errors import StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.expressions import scalar
from sfdsl.runtime.extract import extract
from sfdsl.runtime.voting import vote
from sfdsl.step_kind import with_defaults
from sfdsl.steps import deepen as deepen_step
from sfdsl.steps import evaluate as evaluate_step
from sfdsl.steps import extract as extract_step
from sfdsl.steps import generate as generate_step
from sfdsl.steps import vote as vote_step

if TYPE_CHECKING:
    from sfdsl.plan import Plan
    from sfdsl.runtime.executor import Executor, Frame, RecipeState


async def run_generate(ex: Executor, state: RecipeState, node: generate_step.Generate, frame: Frame,
                       path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    return await state.caller.generate(node, frame.lookup, path)


async def run_deepen(ex: Executor, state: RecipeState, node: deepen_step.Deepen, frame: Frame,
                     path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    return await state.caller.deepen(node, frame.lookup, path)


async def run_evaluate(ex: Executor, state: RecipeState, node: evaluate_step.Evaluate, frame: Frame,
                       path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    return await state.caller.evaluate(node, frame.lookup, path)


async def run_extract(ex: Executor, state: RecipeState, node: extract_step.Extract, frame: Frame,
                      path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    opts = with_defaults(extract_step.PARAMS, state.caller.args(node.args, frame.lookup))
    choices = [str(scalar(c)) for c in eval_expr(node.choices, frame.lookup)] if node.choices else None
    return extract(
        node.mode,
        eval_expr(node.source, frame.lookup),
        pattern=(node.pattern.pattern, node.pattern.flags) if node.pattern else None,
        choices=choices,
        after=(node.after.pattern, node.after.flags) if node.after else None,
        case=str(opts["case"]),
        strip=bool(opts["strip"]),
        last=bool(opts["last"]),
    )


async def run_vote(ex: Executor, state: RecipeState, node: vote_step.Vote, frame: Frame, path: tuple[str, ...],
                   bodies: dict[str, Plan]) -> Any:
    values = eval_expr(node.source, frame.lookup)
    if not isinstance(values, list):
        raise StepError("vote needs a list of answers", location=str(node.span))
    if node.mode == "llm":
        return await state.caller.vote_llm(values, node, frame.lookup, path)
    opts = state.caller.args(node.args, frame.lookup)
    weights = opts.get("weights")
    return vote(values, [float(scalar(w)) for w in weights] if weights is not None else None)
