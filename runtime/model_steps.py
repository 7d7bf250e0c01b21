"""The steps that call a model: generate, deepen, evaluate and LLM-selected votes.

Parameter defaults come from the steps' parameter specs (sfdsl/steps/); the ``run_*`` functions are the
run implementations the step kinds name.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from sfdsl import ast, regexes
from sfdsl.declarations import BACKENDS, DEFAULT_BACKEND
from sfdsl.errors import ContextOverflow, StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.expressions import scalar
from sfdsl.runtime import telemetry
from sfdsl.runtime.backends.base import (
    Backend,
    ChoiceRequest,
    Completion,
    GenerateRequest,
    Message,
    Prompt,
    ScoreRequest,
    ensure_fits,
)
from sfdsl.runtime.context import RunContext
from sfdsl.runtime.conversation import ConversationError, turns_of
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.token_stream import TokenSink
from sfdsl.step_kind import SAMPLING, Spec, with_defaults
from sfdsl.steps import deepen as deepen_step
from sfdsl.steps import evaluate as evaluate_step
from sfdsl.steps import generate as generate_step
from sfdsl.steps import vote as vote_step
from sfdsl.templates import TemplateError, render, variables
from sfdsl.values import Score, Text, VoteOutcome

Lookup = Callable[[str], Any]
SAMPLING_KEYS = set(SAMPLING)
#: Bytes counted against the run's memory ceiling for each sample or loop body (its task, frames and
#: step records: about 4 KB measured), on top of its text.
BODY_BYTES = 4096
#: Bytes of text reserved against the ceiling for each token a sample may generate.
BYTES_PER_TOKEN = 4
USC_PROMPT = """I have generated the following responses to the question:

{% for r in responses %}Response {{ loop.index0 }}: {{ r }}
{% endfor %}
Evaluate these responses.
Select the most consistent response based on majority consensus.
Start your answer with "The most consistent response is Response X" (without quotes)."""


class ModelCaller:
    """Builds requests from steps, sends them through the pool, and accounts for their cost."""

    def __init__(self, ctx: RunContext, pool: BackendPool, models: dict[str, ast.ModelDecl],
                 prompts: dict[str, ast.PromptDecl], charge: Callable[..., None]) -> None:
        self.ctx, self.pool, self.models, self.prompts = ctx, pool, models, prompts
        self._charge = charge

    # ------------------------------------------------------------ plumbing

    def args(self, node_args: list[ast.Arg], lookup: Lookup) -> dict[str, Any]:
        return {a.name: eval_expr(a.value, lookup) for a in node_args}

    async def backend(self, using: str | None, lookup: Lookup) -> tuple[Backend, dict[str, Any]]:
        """The backend for a step and the model's default sampling parameters."""
        decl = self.models.get(using) if using else next(iter(self.models.values()), None)
        if decl is None:
            return await self.pool.get(DEFAULT_BACKEND, dict(BACKENDS[DEFAULT_BACKEND].defaults)), {}
        values = self.args(decl.args, lookup)
        sampling = {k: v for k, v in values.items() if k in SAMPLING_KEYS}
        backend_params = {k: v for k, v in values.items() if k not in SAMPLING_KEYS}
        for name, value in BACKENDS[decl.backend].defaults.items():
            backend_params.setdefault(name, value)
        return await self.pool.get(decl.backend, backend_params), sampling

    def prompt(self, name: str, lookup: Lookup, extra: dict[str, Any] | None = None) -> Prompt:
        decl = self.prompts[name]
        texts = [decl.text] if decl.text is not None else [t.text for t in decl.turns or []]
        try:
            wanted = set().union(*(variables(t) for t in texts))
            values = {v: (extra or {}).get(v) if v in (extra or {}) else lookup(v) for v in wanted}
            rendered = [render(t, values) for t in texts]
        except TemplateError as exc:
            raise StepError(f"prompt '{name}': {exc}", location=str(decl.body_span)) from None
        if decl.text is not None:
            return Prompt(text=rendered[0])
        messages: list[Message] = []
        for turn, text in zip(decl.turns or [], rendered):
            if turn.splice is None:
                messages.append(Message(role=turn.role, content=text))  # type: ignore[arg-type]
                continue
            try:
                messages.extend(turns_of(eval_expr(turn.splice, lookup)))
            except ConversationError as exc:
                raise StepError(f"prompt '{name}': {exc}", location=str(turn.span)) from None
        return Prompt(messages=tuple(messages))

    def request(self, prompt: Prompt, given: dict[str, Any], path: tuple[str, ...],
                spec: Spec = generate_step.PARAMS) -> GenerateRequest:
        """A generation request from a step's parameters, completed with the spec's defaults."""
        params = with_defaults(spec, given)
        n = int(params.get("n", 1))
        stop = params["stop"]
        grammar = params.get("grammar")
        if params.get("choices") is not None:
            from sfdsl.constraints import gbnf_for_choices

            grammar = gbnf_for_choices([str(c) for c in params["choices"]])
        elif params.get("regex") is not None:
            from sfdsl.constraints import gbnf_for_regex

            pattern = params["regex"]
            grammar = gbnf_for_regex(pattern.pattern if isinstance(pattern, ast.RegexLit) else str(pattern))
        seed, temperature = params.get("seed"), params.get("temperature")
        try:
            return GenerateRequest(
                prompt=prompt,
                n=n,
                temperature=float(temperature if temperature is not None else 0.7 if n > 1 else 0.0),
                top_p=float(params["top_p"]),
                top_k=int(params["top_k"]),
                max_tokens=int(params["max_tokens"]),
                stop=(stop,) if isinstance(stop, str) else tuple(str(s) for s in stop),
                seed=int(seed) if seed is not None else self.ctx.derive_seed(path),
                grammar=grammar,
                logprobs=bool(params.get("logprobs", False)),
            )
        except ValidationError as exc:  # one readable line, located at the step by the executor
            problems = "; ".join(f"'{'.'.join(str(p) for p in e['loc'])}' is {e.get('input')!r}: {e['msg'].lower()}"
                                 for e in exc.errors())
            raise StepError(f"invalid generation parameters: {problems}") from None
        except (ValueError, TypeError) as exc:
            raise StepError(f"invalid generation parameters: {exc}") from None

    async def complete(self, backend: Backend, request: GenerateRequest, what: str,
                       sink: TokenSink | None = None, *, continued: bool = False) -> list[Completion]:
        """One generate call within the budget; its text also goes to ``sink`` as it decodes, when given.

        A completion cut at its token limit marks the step truncated (``RunContext.mark_truncated``),
        unless the caller goes on with it (``continued``: a round of ``deepen``).
        """
        ensure_fits(backend, request.prompt, what)
        reserved = request.n * (BODY_BYTES + BYTES_PER_TOKEN * request.max_tokens)
        self.ctx.hold(reserved, what)  # before the call: n samples cannot outgrow the ceiling
        with self.ctx.call_slot(what, n=request.n, max_tokens=request.max_tokens) as max_tokens:
            if max_tokens != request.max_tokens:
                request = request.model_copy(update={"max_tokens": max_tokens})
            self.ctx.trace.emit("backend_called", op="generate", n=request.n, max_tokens=max_tokens, step=what)
            try:
                with telemetry.model_call(backend, request) as span:
                    completions = await (backend.generate(request) if sink is None
                                         else backend.generate_stream(request, sink))
                    span.completions(completions)
            except ContextOverflow as exc:
                raise ContextOverflow(f"{what}: {exc}") from exc
        self.ctx.hold(max(0, sum(len(c.text) for c in completions) - reserved), what)
        fresh = [c for c in completions if not c.cached]
        reported = [c.requests for c in fresh if c.requests is not None]
        self._charge(prompt_tokens=completions[0].prompt_tokens if completions else 0,
                     completion_tokens=sum(c.completion_tokens for c in completions),
                     cached=bool(completions) and not fresh,
                     requests=sum(reported) if reported else int(bool(fresh)),
                     cached_prompt_tokens=completions[0].cached_prompt_tokens if completions else 0)
        if not continued:
            self._note_finish(tuple(what.split("/")), [c.finish_reason for c in completions])
        return completions

    def _note_finish(self, path: tuple[str, ...], finishes: list[str]) -> None:
        """Remember a step whose kept generation its token limit cut short (for ``RunResult.truncated``)."""
        if "length" in finishes:
            self.ctx.mark_truncated(path)

    async def choice_probs(self, backend: Backend, prompt: Prompt, options: list[str], what: str) -> list[float]:
        """One choice evaluation (one call): the probability of each option as the prompt's continuation."""
        ensure_fits(backend, prompt, what)
        with self.ctx.call_slot(what):
            self.ctx.trace.emit("backend_called", op="choice_probs", choices=len(options), step=what)
            choice = ChoiceRequest(prompt=prompt, choices=tuple(options))
            with telemetry.scoring(backend, choice):
                probs = await backend.choice_probs(choice)
            self._charge()
        return probs

    # ------------------------------------------------------------ steps

    async def generate(self, node: generate_step.Generate, lookup: Lookup, path: tuple[str, ...]) -> Any:
        backend, defaults = await self.backend(node.using, lookup)
        params = {**defaults, **self.args(node.args, lookup)}
        if params.get("schema") is not None:  # JSON values, read and asked again by the structured-reply loop
            from sfdsl.runtime.agent_steps import generate_json

            values = await generate_json(self, backend, self.prompt(node.prompt, lookup), params, path,
                                         str(node.span))
            return values if any(a.name == "n" for a in node.args) else values[0]
        request = self.request(self.prompt(node.prompt, lookup), params, path)
        sink = self.ctx.token_sink if node is self.ctx.streamed and len(path) == 2 else None
        completions = await self.complete(backend, request, "/".join(path), sink)
        texts = [_text(c) for c in completions]
        return texts if any(a.name == "n" for a in node.args) else texts[0]

    async def deepen(self, node: deepen_step.Deepen, lookup: Lookup, path: tuple[str, ...]) -> Any:
        backend, defaults = await self.backend(node.using, lookup)
        params = with_defaults(deepen_step.PARAMS, {**defaults, **self.args(node.args, lookup)})
        n = int(params.pop("n"))
        budgets = deepen_step.deepen_budgets(int(params.pop("budget")), float(params.pop("gamma")),
                                             int(params.pop("max_total")))
        trigger = str(params.pop("trigger"))
        done = params.pop("done", None)
        base = self.prompt(node.prompt, lookup)
        # The first round of all n samples is one batched request (the bound counts it as one call);
        # each unfinished sample then continues on its own.
        if params.get("temperature") is None:
            params["temperature"] = 0.7 if n > 1 else 0.0
        first = self.request(base, {**params, "n": n, "max_tokens": budgets[0]}, path, deepen_step.PARAMS)
        firsts = await self.complete(backend, first, "/".join(path), continued=True)

        async def one(i: int, c: Completion) -> Text:
            text, tokens, prompt_tokens = c.text, c.completion_tokens, c.prompt_tokens
            finish, rounds = c.finish_reason, 1
            for r, budget in enumerate(budgets[1:], start=1):
                if finish != "length" or (done is not None and _matches(done, text)):
                    break
                text += f" {trigger} "
                request = self.request(base.extended(text), {**params, "max_tokens": budget}, path + (f"{i}.{r}",),
                                       deepen_step.PARAMS)
                [c] = await self.complete(backend, request, "/".join(path), continued=True)
                text += c.text
                tokens += c.completion_tokens
                prompt_tokens = prompt_tokens or c.prompt_tokens
                finish, rounds = c.finish_reason, r + 1
            return Text(text=text, tokens=tokens, prompt_tokens=prompt_tokens, finish=finish, index=i, rounds=rounds)

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, c)) for i, c in enumerate(firsts)]
        texts = [t.result() for t in tasks]
        self._note_finish(path, [t.finish for t in texts])
        return texts if any(a.name == "n" for a in node.args) else texts[0]

    async def evaluate(self, node: evaluate_step.Evaluate, lookup: Lookup, path: tuple[str, ...]) -> Any:
        backend, defaults = await self.backend(node.using, lookup)
        params = with_defaults(evaluate_step.MODES[node.mode], self.args(node.args, lookup))
        prompt = self.prompt(node.prompt, lookup)
        what = "/".join(path)
        if node.mode == "critique":
            request = self.request(prompt, {**defaults, **{k: v for k, v in params.items() if k in SAMPLING_KEYS}},
                                   path, SAMPLING)
            [c] = await self.complete(backend, request, what)
            return _verdict(c.text, params)
        if node.mode in ("choice", "rating"):
            options = [str(o) for o in params["options"]] if node.mode == "choice" else \
                [str(d) for d in range(int(params["scale"]) + 1)]
            probs = await self.choice_probs(backend, prompt, options, what)
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
        continuations = tuple(str(scalar(x)) for x in items)
        ensure_fits(backend, prompt, what)
        with self.ctx.call_slot(what):
            self.ctx.trace.emit("backend_called", op="score", continuations=len(continuations), step=what)
            score_request = ScoreRequest(prompt=prompt, continuations=continuations)
            with telemetry.scoring(backend, score_request) as span:
                scores = await backend.score(score_request)
                span.scores(scores)
            self._charge()
        normalize = bool(params["normalize"])
        out = [Score(score=math.exp(s.mean_logprob if normalize else s.logprob), logprob=s.logprob,
                     label=f"{s.n_tokens} tokens") for s in scores]
        return out if isinstance(of, list) else out[0]

    async def vote_llm(self, responses: list[Any], node: Any, lookup: Lookup, path: tuple[str, ...]) -> VoteOutcome:
        backend, defaults = await self.backend(node.using, lookup)
        params = self.args([a for a in node.args if a.name != "prompt"], lookup)
        shown = [str(scalar(r)) for r in responses]
        prompt_arg = next((a for a in node.args if a.name == "prompt"), None)
        if prompt_arg is not None and isinstance(prompt_arg.value, ast.Name):
            prompt = self.prompt(prompt_arg.value.id, lookup, extra={"responses": shown})
        else:
            try:
                usc = render(USC_PROMPT, {"responses": shown})
            except TemplateError as exc:
                raise StepError(f"vote prompt: {exc}", location=str(node.span)) from None
            prompt = Prompt(messages=(Message(role="user", content=usc),))
        request = self.request(prompt, {**defaults, **params}, path, vote_step.MODES["llm"])
        [c] = await self.complete(backend, request, "/".join(path))
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
