"""OpenTelemetry spans for runs, steps and model calls, after the GenAI semantic conventions.

Spans are emitted only when ``opentelemetry-api`` is importable and the
application has set a tracer provider; otherwise every hook is a shared no-op.

* a run: ``invoke_workflow {recipe}`` (``gen_ai.operation.name=invoke_workflow``);
* a step: ``step {kind}`` with ``sfdsl.step.*`` and ``code.*`` (its .sf location);
* a model call: ``{gen_ai.operation.name} {gen_ai.request.model}``, where the
  operation is ``chat`` or ``text_completion`` for generation and ``score``
  for log-probability requests (``evaluate likelihood|choice|rating``).

Prompt and completion text (``gen_ai.input.messages``, ``gen_ai.output.messages``)
and run inputs/answers are recorded only on opt-in: ``SFDSL_OTEL_CAPTURE_CONTENT=1``
(or the GenAI instrumentations' ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``),
or ``with capture_content():`` around the run.

Example:
    >>> from opentelemetry import trace                                # doctest: +SKIP
    >>> trace.set_tracer_provider(TracerProvider())                    # doctest: +SKIP
    >>> sfdsl.load("recipes/self_consistency.sf").recipe().run(...)    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CAPTURE_ENV = "SFDSL_OTEL_CAPTURE_CONTENT"
GENAI_CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The executor's control-flow exceptions (a `return`, a loop's `stop when`) end a step without failing it.
_CONTROL_FLOW = frozenset({"Exit", "StopLoop"})
_PROVIDERS = {"LlamaBackend": "llama_cpp", "OpenAIBackend": "openai", "ScriptedBackend": "sfdsl.scripted"}


@dataclass(frozen=True)
class _Tracing:
    tracer: Any
    capture: bool


_tracing: contextvars.ContextVar[_Tracing | None] = contextvars.ContextVar("sfdsl_tracing", default=None)
_capture_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("sfdsl_otel_capture", default=None)


class _Recorder:
    """Adds what is known only after the call (usage, finish reasons, outputs) to a span."""

    def __init__(self, span: Any = None, capture: bool = False) -> None:
        self.span, self.capture = span, capture

    def completions(self, completions: Sequence[Any]) -> None:
        """Record token usage and finish reasons of a generate call (and the texts on opt-in)."""
        if self.span is None:
            return
        self.span.set_attribute("gen_ai.usage.input_tokens", completions[0].prompt_tokens if completions else 0)
        self.span.set_attribute("gen_ai.usage.output_tokens", sum(c.completion_tokens for c in completions))
        self.span.set_attribute("gen_ai.response.finish_reasons",
                                [_FINISH.get(c.finish_reason, c.finish_reason) for c in completions])
        first = completions[0] if completions else None
        if first is not None and first.response_model:
            self.span.set_attribute("gen_ai.response.model", first.response_model)
        if first is not None and first.response_id:
            self.span.set_attribute("gen_ai.response.id", first.response_id)
        if self.capture:
            self.span.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": c.text}],
                  "finish_reason": _FINISH.get(c.finish_reason, c.finish_reason)} for c in completions]))

    def scores(self, scores: Sequence[Any]) -> None:
        """Record the token usage of a scoring call: the prompt and every scored continuation are input."""
        if self.span is None:
            return
        prompt = scores[0].prompt_tokens if scores else 0
        self.span.set_attribute("gen_ai.usage.input_tokens", prompt + sum(s.n_tokens for s in scores))
        self.span.set_attribute("gen_ai.usage.output_tokens", 0)

    def finished(self, outcome: Any, cost: Any) -> None:
        """Record a run's outcome and its usage summed over every call on its workflow span."""
        if self.span is None:
            return
        self.span.set_attribute("gen_ai.usage.input_tokens", cost.prompt_tokens)
        self.span.set_attribute("gen_ai.usage.output_tokens", cost.completion_tokens)
        self.span.set_attribute("sfdsl.calls", cost.calls)
        self.span.set_attribute("sfdsl.abstained", bool(outcome.abstained))
        if isinstance(outcome.score, int | float):
            self.span.set_attribute("sfdsl.score", float(outcome.score))
        if self.capture:
            self.span.set_attribute("sfdsl.answer", json.dumps(outcome.answer, default=str))


_FINISH = {"eos": "stop"}
_NOOP_RECORDER = _Recorder()
_NOOP = contextlib.nullcontext(_NOOP_RECORDER)


@contextlib.contextmanager
def capture_content(enabled: bool = True) -> Iterator[None]:
    """Record prompt and completion text on spans of runs started inside this block."""
    token = _capture_override.set(enabled)
    try:
        yield
    finally:
        _capture_override.reset(token)


def _tracer() -> Any:
    """The sfdsl tracer when OTel is installed and the application set a provider, else None."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    return provider.get_tracer("sfdsl", own_version())


@functools.cache
def own_version() -> str | None:
    """sfdsl's installed version, or None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sfdsl")
    except PackageNotFoundError:
        return None


def _capture_wanted() -> bool:
    override = _capture_override.get()
    if override is not None:
        return override
    return os.environ.get(CAPTURE_ENV, "").lower() in ("1", "true", "yes") or \
        os.environ.get(GENAI_CAPTURE_ENV, "").lower() == "true"


@contextlib.contextmanager
def workflow(recipe: str, *, run_id: str, seed: int, inputs: Mapping[str, Any]) -> Iterator[_Recorder]:
    """The root span of one run; steps and model calls inside it become its children."""
    tracer = _tracer()
    if tracer is None:
        yield _NOOP_RECORDER
        return
    state = _Tracing(tracer, _capture_wanted())
    attributes: dict[str, Any] = {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": recipe,
                                  "sfdsl.run_id": run_id, "sfdsl.seed": seed}
    if state.capture:
        attributes["sfdsl.inputs"] = json.dumps(dict(inputs), default=str)
    token = _tracing.set(state)
    try:
        with _span(tracer, f"invoke_workflow {recipe}", attributes) as span:
            yield _Recorder(span, state.capture)
    finally:
        _tracing.reset(token)


def step(node_id: str, kind: str, span: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around one plan node; ``span`` is the statement's source span (file, line, column)."""
    state = _tracing.get()
    if state is None:
        return _NOOP
    return _span(state.tracer, f"step {kind}", {
        "sfdsl.step.id": node_id, "sfdsl.step.kind": kind, "sfdsl.step.location": str(span),
        "code.file.path": span.file, "code.line.number": span.line, "code.column.number": span.column})


def model_call(backend: Any, request: Any) -> contextlib.AbstractContextManager[_Recorder]:
    """A span around one generate request; report the completions with ``.completions(...)``."""
    state = _tracing.get()
    if state is None:
        return _NOOP
    prompt = request.prompt
    attributes = {
        **_model_attributes(backend, "chat" if prompt.messages is not None else "text_completion"),
        "gen_ai.request.temperature": request.temperature,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.request.top_p": request.top_p,
        "gen_ai.request.choice.count": request.n,
    }
    if request.top_k:
        attributes["gen_ai.request.top_k"] = request.top_k
    if request.seed is not None:
        attributes["gen_ai.request.seed"] = request.seed
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = list(request.stop)
    if state.capture:
        attributes["gen_ai.input.messages"] = json.dumps(_messages(prompt))
    return _recorded(state, attributes)


def scoring(backend: Any, request: Any) -> contextlib.AbstractContextManager[_Recorder]:
    """A span around one log-probability request (``score`` or ``choice_probs``)."""
    state = _tracing.get()
    if state is None:
        return _NOOP
    options = tuple(request.continuations if hasattr(request, "continuations") else request.choices)
    attributes = {**_model_attributes(backend, "score"), "sfdsl.score.options": len(options)}
    if state.capture:
        attributes["gen_ai.input.messages"] = json.dumps(_messages(request.prompt))
        attributes["sfdsl.score.continuations"] = json.dumps(list(options))
    return _recorded(state, attributes)


@contextlib.contextmanager
def _recorded(state: _Tracing, attributes: dict[str, Any]) -> Iterator[_Recorder]:
    name = f"{attributes['gen_ai.operation.name']} {attributes['gen_ai.request.model']}"
    kind = "client" if attributes["gen_ai.provider.name"] == "openai" else "internal"
    with _span(state.tracer, name, attributes, kind=kind) as span:
        yield _Recorder(span, state.capture)


@contextlib.contextmanager
def _span(tracer: Any, name: str, attributes: dict[str, Any], *, kind: str = "internal") -> Iterator[Any]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span_kind = SpanKind.CLIENT if kind == "client" else SpanKind.INTERNAL
    with tracer.start_as_current_span(name, kind=span_kind, attributes=attributes, record_exception=False,
                                      set_status_on_exception=False) as span:
        try:
            yield span
        except asyncio.CancelledError:
            span.set_attribute("sfdsl.cancelled", True)
            raise
        except BaseException as exc:
            if type(exc).__name__ not in _CONTROL_FLOW:  # a `return` or `stop when` is no failure: no event
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise


def _model_attributes(backend: Any, operation: str) -> dict[str, Any]:
    inner = backend
    while hasattr(inner, "inner"):  # a cache wraps the backend that really answers
        inner = inner.inner
    provider = _PROVIDERS.get(type(inner).__name__, "_OTHER")
    path = getattr(inner, "path", None)
    model = getattr(inner, "model", None) if provider == "openai" else path.name if path is not None else None
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.provider.name": provider,
                                  "gen_ai.request.model": str(model or getattr(inner, "model_id", "unknown"))}
    return {**attributes, **_server(getattr(inner, "base_url", None))}


def _server(base_url: Any) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of a remote backend (its first endpoint)."""
    if not isinstance(base_url, str) or not base_url:
        return {}
    url = urlsplit(base_url.split(",")[0].strip())
    if not url.hostname:
        return {}
    port = url.port or (443 if url.scheme == "https" else 80)
    return {"server.address": url.hostname, "server.port": port}


def _messages(prompt: Any) -> list[dict[str, Any]]:
    if prompt.messages is None:
        return [{"role": "user", "parts": [{"type": "text", "content": prompt.text or ""}]}]
    return [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in prompt.messages]
