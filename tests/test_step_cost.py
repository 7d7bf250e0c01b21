"""The step-cost model behind the engine's prefill budget."""

from __future__ import annotations

import pytest

from sfdsl.runtime.step_cost import StepCost


def test_fit_recovers_a_linear_cost() -> None:
    cost = StepCost()
    for i in range(200):
        n = 1 + (i * 37) % 300
        cost.observe(n, 0.03 + 0.002 * n)
    assert cost.fixed == pytest.approx(0.03, rel=0.05)
    assert cost.per_token == pytest.approx(0.002, rel=0.05)


def test_budget_keeps_interactive_steps_within_the_share() -> None:
    cost = StepCost()
    for n in (2, 4, 100, 200, 3, 150):
        for _ in range(20):
            cost.observe(n, 0.05 + 0.01 * n)
    budget = cost.prefill_budget(4, share=0.5, cap=512)
    alone = cost.fixed + cost.per_token * 4
    assert cost.fixed + cost.per_token * (4 + budget) <= 1.5 * alone + 1e-9
    assert budget >= 1
    assert cost.prefill_budget(4, share=0.5, cap=2) == 2  # capped by the batch room
    assert cost.fixed + cost.per_token * cost.tokens_within(1.0) == pytest.approx(1.0, abs=0.02)
    flat = StepCost()
    for _ in range(50):
        flat.observe(8, 0.1)  # no variation in size: the seeded prior keeps the fit defined
    assert flat.per_token > 0 and flat.prefill_budget(8, share=0.5, cap=512) >= 1
