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
def _reset_structlog() -> Any:
    """The CLI configures structlog globally (stderr, warnings only); undo that after each test."""
    import structlog

    yield
    structlog.reset_defaults()


@pytest.fixture
def otel_spans() -> Any:
    """An in-memory exporter on the process-wide OTel SDK provider (OTel lets a process set it once)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()
