"""Shared test helpers: compiling source, running recipes on the scripted backend."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import sfdsl
from sfdsl.runtime.results import RunResult

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def golden_text(path: Path) -> str:
    """A program's golden dump: each recipe's plan and its cost bound at the default inputs."""
    from sfdsl.plan import dump

    program = sfdsl.load(path)
    parts = []
    for name in program.names:
        recipe = program.recipe(name)
        parts.append(f"recipe {name}\n{dump(recipe.plan)}\nbound: {recipe.bound()}")
    return "\n\n".join(parts) + "\n"


def run_source(source: str, backend: Any, recipe: str | None = None, **inputs: Any) -> RunResult:
    """Compile source and run one recipe on the given backend."""
    return sfdsl.compile(source).recipe(recipe).run(inputs, backend=backend)


async def arun_source(source: str, backend: Any, recipe: str | None = None, **inputs: Any) -> RunResult:
    return await sfdsl.compile(source).recipe(recipe).arun(inputs, backend=backend)


@pytest.fixture
def event_loop_runner() -> Any:
    """Run a coroutine to completion in a fresh loop."""
    return asyncio.run


@pytest.fixture(autouse=True)
def _reset_logging() -> Any:
    """`sfrun` adds a console handler to the "sfdsl" logger and sets its level; undo that after each test."""
    import logging

    import structlog

    yield
    logger = logging.getLogger("sfdsl")
    for handler in [h for h in logger.handlers if getattr(h, "sfrun_console", False)]:
        logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The structlog event dicts sfdsl logged, as captured by pytest's caplog."""
    from sfdsl.log import event_of

    return [e for e in (event_of(r) for r in caplog.records) if e is not None]


@pytest.fixture(scope="session")
def _otel_switch() -> Any:
    """One span processor on the process-wide OTel SDK provider (a process sets it once), on only during a test."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    class Switch(SpanProcessor):
        def __init__(self) -> None:
            self.exporter: Any = None

        def on_end(self, span: ReadableSpan) -> None:
            if self.exporter is not None:
                self.exporter.export((span,))

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    switch = Switch()
    provider.add_span_processor(switch)
    return switch


@pytest.fixture
def otel_spans(_otel_switch: Any) -> Any:
    """The spans finished during this test, in an in-memory exporter."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    _otel_switch.exporter = exporter
    yield exporter
    _otel_switch.exporter = None
