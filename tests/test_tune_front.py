"""The front with CIs, and which point is chosen under each kind of constraint."""

from __future__ import annotations

from sfdsl.eval.store import ItemRecord
from sfdsl.tune.front import choose, measure
from sfdsl.tune.goals import Objective, parse_constraint
from sfdsl.tune.space import Config


def _records(n_right: int, tokens: int, items: int = 10) -> list[ItemRecord]:
    return [ItemRecord(run_key="r", item_key=f"k{i}", sample=0, item_id=str(i), item_index=i, recipe="x", inputs={},
                       gold="1", answer="1", outputs={}, correct=i < n_right, answer_correct=i < n_right,
                       first_correct=None, score=None, abstained=False, calls=1, prompt_tokens=tokens,
                       completion_tokens=0, cached_calls=0, wall_s=0.0, seed=0) for i in range(items)]


CONFIGS = {  # n -> (right of 10, tokens per item)
    1: (4, 50), 2: (4, 70), 3: (6, 90), 4: (7, 110), 5: (9, 130),
}


def _points() -> list:
    objective = Objective()
    configs = [Config("sc", {"n": n}) for n in CONFIGS]
    records = {c.key: _records(*CONFIGS[c.inputs["n"]]) for c in configs}
    bounds = {c.key: {"calls": 1, "tokens": 20 * c.inputs["n"]} for c in configs}
    return measure(configs, records, {c.key: dict(c.inputs) for c in configs}, objective, bounds=bounds)


def test_front_marks_the_undominated_points_with_cis() -> None:
    points = _points()
    assert [p.config.inputs["n"] for p in points if p.on_front] == [1, 3, 4, 5]  # n=2: same accuracy, dearer
    for p in points:
        lo, hi = p.summary["accuracy_ci"]
        assert lo <= p.accuracy <= hi
    row = points[0].to_json(Objective(), chosen=True)
    assert row["inputs"] == {"n": 1} and row["cost_per_item"]["tokens"] == 50 and row["chosen"]


def test_choice_under_each_constraint() -> None:
    points = _points()
    assert choose(points, Objective()).config.inputs == {"n": 5}
    assert choose(points, Objective(), [parse_constraint("tokens_per_item<=100")]).config.inputs == {"n": 3}
    assert choose(points, Objective(), [parse_constraint("accuracy>=0.65")]).config.inputs == {"n": 4}
    assert choose(points, Objective(), [parse_constraint("bound_tokens<=40")]).config.inputs == {"n": 1}
    assert choose(points, Objective(), [parse_constraint("accuracy>=0.95")]) is None
