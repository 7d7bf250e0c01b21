"""OpenTelemetry spans of a run: workflow root, one span per step, GenAI model-call spans, opt-in content."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

import sfdsl
from sfdsl.runtime import telemetry
from tests.conftest import REPO

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REPLIES = ["Step one. The answer is 4.", "The answer is 4.", "The answer is 5.", "I think the answer is 4.", "no idea"]
QUESTION = "What is 2+2?"


def run_self_consistency(**inputs: Any) -> sfdsl.RunResult:
    recipe = sfdsl.load(REPO / "recipes/self_consistency.sf").recipe("self_consistency")
    return recipe.run({"question": QUESTION, **inputs}, backend=sfdsl.ScriptedBackend(list(REPLIES)))


def by_name(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


def test_self_consistency_emits_workflow_step_and_genai_spans(otel_spans: InMemorySpanExporter) -> None:
    result = run_self_consistency()
    finished = otel_spans.get_finished_spans()
    [root] = by_name(finished, "invoke_workflow ")
    assert root.name == "invoke_workflow self_consistency"
    assert root.parent is None
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert root.attributes["gen_ai.workflow.name"] == "self_consistency"
    assert root.attributes["sfdsl.run_id"] == result.run_id
    assert root.attributes["gen_ai.usage.output_tokens"] == result.cost.completion_tokens
    assert root.attributes["sfdsl.calls"] == result.cost.calls == 1

    steps = by_name(finished, "step ")
    assert {s.attributes["sfdsl.step.kind"] for s in steps} >= {"generate", "extract", "vote"}
    generate = next(s for s in steps if s.attributes["sfdsl.step.kind"] == "generate")
    assert generate.attributes["code.file.path"].endswith("self_consistency.sf")
    assert generate.attributes["code.line.number"] == 48
    assert str(generate.attributes["sfdsl.step.location"]).endswith("self_consistency.sf:48:3")
    assert all(s.parent is not None and s.context.trace_id == root.context.trace_id for s in steps)

    calls = [s for s in finished if "gen_ai.usage.output_tokens" in s.attributes and s is not root]
    [call] = calls
    assert call.name == "chat scripted"
    assert call.parent.span_id == generate.context.span_id
    attrs = call.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "sfdsl.scripted"
    assert attrs["gen_ai.request.model"] == "scripted"
    assert attrs["gen_ai.request.choice.count"] == 5
    assert attrs["gen_ai.request.temperature"] == pytest.approx(0.7)
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert isinstance(attrs["gen_ai.request.seed"], int)
    assert attrs["gen_ai.usage.output_tokens"] == sum(len(r.split()) for r in REPLIES)
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert "sfdsl.inputs" not in root.attributes and "sfdsl.answer" not in root.attributes


def test_content_is_recorded_only_on_opt_in(otel_spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "1")
    result = run_self_consistency()
    finished = otel_spans.get_finished_spans()
    [call] = by_name(finished, "chat ")
    messages = json.loads(str(call.attributes["gen_ai.input.messages"]))
    assert messages[0]["role"] == "user" and QUESTION in messages[0]["parts"][0]["content"]
    outputs = json.loads(str(call.attributes["gen_ai.output.messages"]))
    assert [o["parts"][0]["content"] for o in outputs] == REPLIES
    [root] = by_name(finished, "invoke_workflow ")
    assert json.loads(str(root.attributes["sfdsl.answer"])) == result.answer


def test_capture_content_block_overrides_the_environment(otel_spans: InMemorySpanExporter,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(telemetry.CAPTURE_ENV, "1")
    with telemetry.capture_content(False):
        run_self_consistency()
    [call] = by_name(otel_spans.get_finished_spans(), "chat ")
    assert "gen_ai.input.messages" not in call.attributes


def test_scoring_steps_get_score_spans(otel_spans: InMemorySpanExporter) -> None:
    source = '''
recipe judge(question: str) -> (answer, score) {
  prompt ask = "Q: {{ question }} A:"
  prompt check = "Is {{ a }} right? (A) True (B) False. Answer: ("
  a = generate ask (max_tokens: 8)
  p = evaluate choice check (options: ["A", "B"])
  return answer: a, score: p.score
}'''
    backend = sfdsl.ScriptedBackend(["four"], scores={"A": -0.1, "B": -2.0})
    sfdsl.compile(source).recipe().run({"question": "2+2?"}, backend=backend)
    [score] = by_name(otel_spans.get_finished_spans(), "score ")
    assert score.attributes["gen_ai.operation.name"] == "score"
    assert score.attributes["sfdsl.score.options"] == 2
    [completion] = by_name(otel_spans.get_finished_spans(), "text_completion ")
    assert completion.attributes["gen_ai.request.choice.count"] == 1


def test_a_failing_run_marks_its_spans_as_errors(otel_spans: InMemorySpanExporter) -> None:
    recipe = sfdsl.load(REPO / "recipes/chain_of_thought.sf").recipe()
    with pytest.raises(sfdsl.SfdslError):
        recipe.run({"question": QUESTION}, backend=sfdsl.ScriptedBackend([]))
    [root] = by_name(otel_spans.get_finished_spans(), "invoke_workflow ")
    assert root.status.status_code == trace.StatusCode.ERROR
    assert root.attributes["error.type"] == "ScriptExhausted"
    [call] = by_name(otel_spans.get_finished_spans(), "chat ")
    assert call.attributes["error.type"] == "ScriptExhausted"


ABSENT = """
import sys
{block}
import sfdsl
from sfdsl.runtime import telemetry
recipe = sfdsl.load("recipes/chain_of_thought.sf").recipe()
assert telemetry._tracer() is None
assert telemetry.step("n", "generate", None) is telemetry._NOOP
print(recipe.run(question="2+2?", backend=sfdsl.ScriptedBackend(["The answer is 4."])).answer)
"""


@pytest.mark.parametrize("block", ["", "sys.modules['opentelemetry'] = None  # not installed"],
                         ids=["no-provider", "no-otel"])
def test_no_provider_or_no_otel_means_no_op_hooks(block: str) -> None:
    done = subprocess.run([sys.executable, "-c", ABSENT.format(block=block)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, telemetry.CAPTURE_ENV: "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "4"


def test_a_normal_return_leaves_no_exception_event(otel_spans: InMemorySpanExporter) -> None:
    run_self_consistency()
    spans = otel_spans.get_finished_spans()
    assert spans and all(not span.events for span in spans)
    assert all(span.status.status_code != trace.StatusCode.ERROR for span in spans)


def test_a_failure_keeps_its_exception_event(otel_spans: InMemorySpanExporter) -> None:
    with pytest.raises(sfdsl.SfdslError):
        sfdsl.load(REPO / "recipes/chain_of_thought.sf").recipe().run(
            {"question": QUESTION}, backend=sfdsl.ScriptedBackend([]))
    [root] = by_name(otel_spans.get_finished_spans(), "invoke_workflow ")
    assert [event.name for event in root.events] == ["exception"]


def test_scoring_calls_report_their_token_usage(otel_spans: InMemorySpanExporter) -> None:
    source = '''
recipe best(question: str) -> answer {
  prompt ask = "Q: {{ question }} A:"
  s = evaluate likelihood ask (of: ["four", "five six"])
  return s
}'''
    sfdsl.compile(source).recipe().run({"question": "2+2?"}, backend=sfdsl.ScriptedBackend(
        [], scores={"four": -0.1, "five six": -2.0}))
    [score] = by_name(otel_spans.get_finished_spans(), "score ")
    assert score.attributes["gen_ai.usage.input_tokens"] == 3 and score.attributes["gen_ai.usage.output_tokens"] == 0


def test_client_spans_carry_the_server_and_the_response_model_and_id(otel_spans: InMemorySpanExporter) -> None:
    from openai_fake import OpenAIServer

    from sfdsl.runtime.backends.openai_http import OpenAIBackend

    with OpenAIServer(sfdsl.ScriptedBackend(["The answer is 4."])) as server:
        backend = OpenAIBackend(base_url=server.base_url)
        sfdsl.load(REPO / "recipes/chain_of_thought.sf").recipe().run({"question": QUESTION}, backend=backend)
    [call] = by_name(otel_spans.get_finished_spans(), "chat ")
    attrs = call.attributes
    assert call.kind == trace.SpanKind.CLIENT
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == int(server.base_url.split(":")[2][:-3])
    assert attrs["gen_ai.response.model"] and str(attrs["gen_ai.response.id"]).startswith("cmpl-")
