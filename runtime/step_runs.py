"""Run implementations of the steps without a body (sfdsl/steps/ names them): the model steps generate, deepen,
evaluate and LLM-selected votes (which call the model through the recipe's ``ModelCaller``), and extract and
vote, which compute."""

from __future__ import annotations

import asyncio
import math
import re
from typing import TYPE_CHECKING, Any

from sfdsl import ast, regexes
from sfdsl.errors import StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.expressions import scalar
from sfdsl.runtime.backends.base import Completion, Message, Prompt
from sfdsl.runtime.extract import extract
from sfdsl.runtime.model_steps import SAMPLING_KEYS, Lookup, ModelCaller
from sfdsl.runtime.voting import vote
from sfdsl.step_kind import SAMPLING, with_defaults
from sfdsl.steps import deepen as deepen_step
from sfdsl.steps import evaluate as evaluate_step
from sfdsl.steps import extract as extract_step
from sfdsl.steps import generate as generate_step
from sfdsl.steps import vote as vote_step
from sfdsl.templates import TemplateError, render
from sfdsl.values import Score, Text, VoteOutcome

if TYPE_CHECKING:
    from sfdsl.plan import Plan
    from sfdsl.runtime.executor import Executor, Frame, RecipeState

USC_PROMPT = """I have generated the following responses to the question:

{% for r in responses %}Response {{ loop.index0 }}: {{ r }}
{% endfor %}
Evaluate these responses.
Select the most consistent response based on majority consensus.
Start your answer with "The most consistent response is Response X" (without quotes)."""


async def run_generate(ex: Executor, state: RecipeState, node: generate_step.Generate, frame: Frame,
                       path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    caller, lookup = state.caller, frame.lookup
    backend, defaults = await caller.backend(node.using, lookup)
    params = {**defaults, **caller.args(node.args, lookup)}
    if params.get("schema") is not None:  # JSON values, read and asked again by the structured-reply loop
        from sfdsl.runtime.agent_steps import generate_json

        values = await generate_json(caller, backend, caller.prompt(node.prompt, lookup), params, path,
                                     str(node.span))
        return node.value_of(values)
    request = caller.request(caller.prompt(node.prompt, lookup), params, path)
    sink = caller.ctx.token_sink if node is caller.ctx.streamed and len(path) == 2 else None
    completions = await caller.complete(backend, request, "/".join(path), sink)
    texts = [_text(c) for c in completions]
    return node.value_of(texts)


async def run_deepen(ex: Executor, state: RecipeState, node: deepen_step.Deepen, frame: Frame,
                     path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    caller, lookup = state.caller, frame.lookup
    backend, defaults = await caller.backend(node.using, lookup)
    params = with_defaults(deepen_step.PARAMS, {**defaults, **caller.args(node.args, lookup)})
    n = int(params.pop("n"))
    budgets = deepen_step.deepen_budgets(int(params.pop("budget")), float(params.pop("gamma")),
                                         int(params.pop("max_total")))
    trigger = str(params.pop("trigger"))
    done = params.pop("done", None)
    base = caller.prompt(node.prompt, lookup)
    # The first round of all n samples is one batched request (the bound counts it as one call);
    # each unfinished sample then continues on its own.
    first = caller.request(base, {**params, "n": n, "max_tokens": budgets[0]}, path, deepen_step.PARAMS)
    firsts = await caller.complete(backend, first, "/".join(path), continued=True)

    async def one(i: int, c: Completion) -> Text:
        text, tokens, prompt_tokens = c.text, c.completion_tokens, c.prompt_tokens
        finish, rounds = c.finish_reason, 1
        for r, budget in enumerate(budgets[1:], start=1):
            if finish != "length" or (done is not None and _matches(done, text)):
                break
            text += f" {trigger} "
            request = caller.request(base.extended(text), {**params, "max_tokens": budget}, path + (f"{i}.{r}",),
                                     deepen_step.PARAMS)
            [c] = await caller.complete(backend, request, "/".join(path), continued=True)
            text += c.text
            tokens += c.completion_tokens
            prompt_tokens = prompt_tokens or c.prompt_tokens
            finish, rounds = c.finish_reason, r + 1
        return Text(text=text, tokens=tokens, prompt_tokens=prompt_tokens, finish=finish, index=i, rounds=rounds)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(i, c)) for i, c in enumerate(firsts)]
    texts = [t.result() for t in tasks]
    caller.note_finish(path, [t.finish for t in texts])
    return node.value_of(texts)


async def run_evaluate(ex: Executor, state: RecipeState, node: evaluate_step.Evaluate, frame: Frame,
                       path: tuple[str, ...], bodies: dict[str, Plan]) -> Any:
    caller, lookup = state.caller, frame.lookup
    backend, defaults = await caller.backend(node.using, lookup)
    params = with_defaults(evaluate_step.MODES[node.mode], caller.args(node.args, lookup))
    prompt = caller.prompt(node.prompt, lookup)
    what = "/".join(path)
    if node.mode == "critique":
        request = caller.request(prompt, {**defaults, **{k: v for k, v in params.items() if k in SAMPLING_KEYS}},
                                 path, SAMPLING)
        [c] = await caller.complete(backend, request, what)
        return _verdict(c.text, params)
    if node.mode in ("choice", "rating"):
        options = [str(o) for o in params["options"]] if node.mode == "choice" else \
            [str(d) for d in range(int(params["scale"]) + 1)]
        probs = await caller.choice_probs(backend, prompt, options, what)
        best = max(range(len(options)), key=lambda i: probs[i])
        if node.mode == "rating":
            scale = len(options) - 1
            expected = sum(i * p for i, p in enumerate(probs))
            return Score(score=expected / scale if scale else 0.0, label=options[best], probs=tuple(probs))
        positive = str(params.get("positive", options[0]))
        if positive not in options:
            raise StepError(f"positive option {positive!r} is not one of the options {options}", location=what)
        return Score(score=probs[options.index(positive)], label=options[best].strip(), probs=tuple(probs))
    of = params["of"]
    items = of if isinstance(of, list) else [of]
    scores = await caller.score(backend, prompt, tuple(str(scalar(x)) for x in items), what)
    normalize = bool(params["normalize"])
    out = [Score(score=math.exp(s.mean_logprob if normalize else s.logprob), logprob=s.logprob,
                 label=f"{s.n_tokens} tokens") for s in scores]
    return out if isinstance(of, list) else out[0]


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
        return await vote_llm(state.caller, values, node, frame.lookup, path)
    opts = state.caller.args(node.args, frame.lookup)
    weights = opts.get("weights")
    return vote(values, [float(scalar(w)) for w in weights] if weights is not None else None)


async def vote_llm(caller: ModelCaller, responses: list[Any], node: Any, lookup: Lookup,
                   path: tuple[str, ...]) -> VoteOutcome:
    """The model picks the most consistent of ``responses`` (``vote … (llm)`` and ``vote N times (llm)``)."""
    backend, defaults = await caller.backend(node.using, lookup)
    params = caller.args([a for a in node.args if a.name != "prompt"], lookup)
    shown = [str(scalar(r)) for r in responses]
    prompt_arg = next((a for a in node.args if a.name == "prompt"), None)
    if prompt_arg is not None and isinstance(prompt_arg.value, ast.Name):
        prompt = caller.prompt(prompt_arg.value.id, lookup, extra={"responses": shown})
    else:
        try:
            usc = render(USC_PROMPT, {"responses": shown})
        except TemplateError as exc:
            raise StepError(f"vote prompt: {exc}", location=str(node.span)) from None
        prompt = Prompt(messages=(Message(role="user", content=usc),))
    request = caller.request(prompt, {**defaults, **params}, path, vote_step.MODES["llm"])
    [c] = await caller.complete(backend, request, "/".join(path))
    match = re.search(r"Response\s*#?\s*(\d+)", c.text)
    index = int(match.group(1)) if match and int(match.group(1)) < len(responses) else 0
    return VoteOutcome(answer=scalar(responses[index]) if responses else None, share=1.0 / max(1, len(responses)),
                       share_all=1.0 / max(1, len(responses)), votes=len(responses), total=len(responses),
                       counts={"selected": float(index)})

def _text(c: Completion) -> Text:
    return Text(text=c.text, tokens=c.completion_tokens, prompt_tokens=c.prompt_tokens, logprob=c.logprob,
                finish=c.finish_reason, index=c.index)


def _matches(pattern: Any, text: str) -> bool:
    if isinstance(pattern, ast.RegexLit):
        return regexes.search(pattern.pattern, text, pattern.flags)
    return regexes.search(str(pattern), text)


def _verdict(text: str, params: dict[str, Any]) -> Score:
    fail = params.get("fail")
    if fail is not None and _matches(fail, text):
        return Score(score=0.0, label="fail", text=text)
    if _matches(params["pass"], text):
        return Score(score=1.0, label="pass", text=text)
    return Score(score=0.0 if fail is None else 0.5, label="fail" if fail is None else "unclear", text=text)
