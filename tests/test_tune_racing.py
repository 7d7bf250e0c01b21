"""The racing rule: rungs, dominance by an earlier configuration (sign test), and constraints on means."""

from __future__ import annotations

from sfdsl.eval.store import ItemRecord
from sfdsl.tune.goals import parse_constraint
from sfdsl.tune.racing import Rival, default_first_rung, rival_records, rungs, stop_reason


def _records(correct: list[bool], tokens: int, run: str = "r") -> list[ItemRecord]:
    return [ItemRecord(run_key=run, item_key=f"k{i}", sample=0, item_id=str(i), item_index=i, recipe="x",
                       inputs={}, gold="1", answer="1" if ok else "2", outputs={}, correct=ok, answer_correct=ok,
                       first_correct=None, score=None, abstained=False, calls=1, prompt_tokens=tokens - 5,
                       completion_tokens=5, cached_calls=0, wall_s=0.01, seed=0)
            for i, ok in enumerate(correct)]


def test_rungs_double_up_to_every_item() -> None:
    assert rungs(100, 12) == [12, 24, 48, 96, 100]
    assert rungs(16, 8) == [8, 16]
    assert rungs(5, 8) == [5]
    assert default_first_rung(80) == 10 and default_first_rung(30) == 8 and default_first_rung(5) == 5


def test_dominated_by_a_cheaper_config_that_wins_significantly() -> None:
    weak = _records([i % 2 == 0 for i in range(20)], tokens=100)
    strong = _records([True] * 20, tokens=50)
    reason = stop_reason(weak, [Rival("cheap", strong)], cost_field="tokens_per_item")
    assert reason is not None and "dominated by cheap (10 items won, 0 lost" in reason


def test_not_stopped_by_a_costlier_or_an_insignificant_rival() -> None:
    mine = _records([i % 2 == 0 for i in range(20)], tokens=100)
    costlier = _records([True] * 20, tokens=150)
    assert stop_reason(mine, [Rival("costly", costlier)], cost_field="tokens_per_item") is None
    close = _records([i % 2 == 0 or i < 4 for i in range(20)], tokens=50)  # wins 2 items: not significant
    assert stop_reason(mine, [Rival("close", close)], cost_field="tokens_per_item") is None


def test_stopped_when_its_mean_cost_is_surely_over_the_limit() -> None:
    mine = _records([True] * 10, tokens=200)
    over = parse_constraint("tokens_per_item<=150")
    assert "above 150" in (stop_reason(mine, [], cost_field="tokens_per_item", constraints=[over]) or "")
    for kept in ("tokens_per_item<=200", "bound_tokens<=1"):  # within the limit; a bound is not judged here
        assert stop_reason(mine, [], cost_field="tokens_per_item", constraints=[parse_constraint(kept)]) is None
    poor = _records([False] * 9 + [True], tokens=10)
    assert "accuracy below 0.8" in (stop_reason(poor, [], cost_field="tokens_per_item",
                                                constraints=[parse_constraint("accuracy>=0.8")]) or "")


def test_rivals_must_cover_the_same_items() -> None:
    history = {"full": _records([True] * 20, tokens=5), "short": _records([True] * 4, tokens=5)}
    rivals = rival_records(history, {str(i) for i in range(8)})
    assert [r.name for r in rivals] == ["full"] and len(rivals[0].records) == 8
