"""How a step calls a model: ``ModelCaller`` builds requests, sends them through the pool within the budget,
and accounts for their cost.

The model steps' run implementations (generate, deepen, evaluate, LLM-selected votes) are ``run_*`` functions
in ``runtime/step_runs.py``, like every other kind's; parameter defaults come from the steps' parameter specs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from sfdsl import ast
from sfdsl.declarations import BACKENDS, DEFAULT_BACKEND
from sfdsl.errors import ContextOverflow, StepError
from sfdsl.expressions import evaluate as eval_expr
from sfdsl.runtime import telemetry
from sfdsl.runtime.backends.base import (
    Backend,
    ChoiceRequest,
    Completion,
    GenerateRequest,
    Message,
    Prompt,
    ScoreRequest,
    SequenceScore,
    ensure_fits,
)
from sfdsl.runtime.context import RunContext
from sfdsl.runtime.conversation import ConversationError, turns_of
from sfdsl.runtime.pool import BackendPool
from sfdsl.runtime.token_stream import TokenSink
from sfdsl.step_kind import SAMPLING, Spec, with_defaults
from sfdsl.steps import generate as generate_step
from sfdsl.templates import TemplateError, render, variables

Lookup = Callable[[str], Any]
SAMPLING_KEYS = set(SAMPLING)
#: Bytes counted against the run's memory ceiling for each sample or loop body (its task, frames and
#: step records: about 4 KB measured), on top of its text.
BODY_BYTES = 4096
#: Bytes of text reserved against the ceiling for each token a sample may generate.
BYTES_PER_TOKEN = 4


class ModelCaller:
    """Builds requests from steps, sends them through the pool, and accounts for their cost."""

    def __init__(self, ctx: RunContext, pool: BackendPool, models: dict[str, ast.ModelDecl],
                 prompts: dict[str, ast.PromptDecl], charge: Callable[..., None]) -> None:
        self.ctx, self.pool, self.models, self.prompts = ctx, pool, models, prompts
        self._charge = charge

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
        seed = params.get("seed")
        try:
            return GenerateRequest(
                prompt=prompt,
                n=n,
                temperature=float(params["temperature"]),
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
            self.note_finish(tuple(what.split("/")), [c.finish_reason for c in completions])
        return completions

    def note_finish(self, path: tuple[str, ...], finishes: list[str]) -> None:
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

    async def score(self, backend: Backend, prompt: Prompt, continuations: tuple[str, ...],
                    what: str) -> list[SequenceScore]:
        """One scoring call: the log-probability of each continuation after the prompt."""
        ensure_fits(backend, prompt, what)
        with self.ctx.call_slot(what):
            self.ctx.trace.emit("backend_called", op="score", continuations=len(continuations), step=what)
            request = ScoreRequest(prompt=prompt, continuations=continuations)
            with telemetry.scoring(backend, request) as span:
                scores = await backend.score(request)
                span.scores(scores)
            self._charge()
        return scores
