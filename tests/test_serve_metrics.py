"""Metrics live in each app's own registry and read the engine's batch size when there is one."""

from __future__ import annotations

from types import SimpleNamespace

from sfdsl.runtime.results import Cost, RunResult
from sfdsl.serve.metrics import ServeMetrics, engine_batch_size


def test_each_app_has_its_own_registry_and_gauges_read_live_values() -> None:
    state = {"in_flight": 3, "queued": 5}
    engine = SimpleNamespace(batch_size=7)
    first = ServeMetrics(in_flight=lambda: state["in_flight"], queued=lambda: state["queued"],
                         backends=lambda: [SimpleNamespace(inner=SimpleNamespace(engine=engine)), object()])
    second = ServeMetrics(in_flight=lambda: 0, queued=lambda: 0, backends=lambda: [])
    first.observe_run("p_true", RunResult(run_id="r", recipe="p_true", cost=Cost(completion_tokens=12, wall_s=0.3)))
    first.requests.labels("/health", "200").inc()
    text = first.render().decode()
    assert "sfdsl_runs_in_flight 3.0" in text and "sfdsl_queue_depth 5.0" in text
    assert 'sfdsl_tokens_generated_total{model="p_true"} 12.0' in text
    assert 'sfdsl_run_seconds_count{model="p_true"} 1.0' in text
    assert "sfdsl_engine_batch_size 7.0" in text
    other = second.render().decode()
    assert "p_true" not in other and "sfdsl_engine_batch_size" not in other


def test_engine_batch_size_only_for_backends_with_an_engine() -> None:
    assert engine_batch_size(SimpleNamespace(engine=SimpleNamespace(batch_size=2))) == 2
    assert engine_batch_size(object()) is None
