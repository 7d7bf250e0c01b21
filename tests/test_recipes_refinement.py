"""Scripted control flow of the refinement recipes: self_refine, untargeted_refine, step_correction.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
from scripted_recipes import assistant_prefill, generations, run

from sfdsl import ScriptedBackend


def refine_script(verdicts: list[str]) -> tuple[ScriptedBackend, dict[str, int]]:
    calls = {"draft": 0, "feedback": 0, "rewrite": 0}

    def reply(prompt: str, i: int) -> str:
        if "Check the solution below" in prompt:
            calls["feedback"] += 1
            return f"Step 2 is off. Verdict: {verdicts[min(calls['feedback'], len(verdicts)) - 1]}"
        if "Write an improved version" in prompt:
            calls["rewrite"] += 1
            return f"Rewrite {calls['rewrite']}: the answer is {30 + calls['rewrite']}"
        calls["draft"] += 1
        return "Draft: the answer is 30"

    return ScriptedBackend(reply), calls


def test_self_refine_stops_when_the_feedback_says_correct() -> None:
    backend, calls = refine_script(["incorrect", "correct"])
    result = run("self_refine", backend)
    assert result.answer == "31" and result.outputs["first"] == "30"
    assert result.outputs["rounds"] == 2 and result.outputs["stopped"] is True
    assert calls == {"draft": 1, "feedback": 2, "rewrite": 1}
    feedback = [r for r in generations(backend) if "Check the solution below" in r.prompt.canonical()]
    assert all(r.temperature == 0.7 for r in feedback)


def test_self_refine_runs_to_its_bound_with_the_whole_history() -> None:
    backend, calls = refine_script(["incorrect"])
    result = run("self_refine", backend)
    assert calls == {"draft": 1, "feedback": 4, "rewrite": 4}
    assert result.outputs["rounds"] == 4 and result.outputs["stopped"] is False
    assert result.answer == "34" and result.outputs["first"] == "30"
    assert result.cost.calls == result.bound["calls"] == 9
    prompts = [r.prompt.canonical() for r in generations(backend)]
    text = [p for p in prompts if "Write an improved version" in p][-1]
    assert text.index("Draft: the answer is 30") < text.index("Rewrite 1:") < text.index("Rewrite 3:")
    assert text.count("Feedback:") == 4  # every earlier solution with its feedback, oldest first


def test_self_refine_prompts_extend_the_one_before_so_the_prefix_cache_can_reuse_them() -> None:
    backend, _ = refine_script(["incorrect"])
    run("self_refine", backend)
    prompts = [r.prompt.canonical() for r in generations(backend)]
    rewrites = [p for p in prompts if "Write an improved version" in p]
    feedback = [p for p in prompts if "Check the solution below" in p]
    assert len(rewrites) == len(feedback) == 4
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(rewrites))
    start = feedback[0][: feedback[0].index("Solution:\n") + len("Solution:\n")]
    assert all(p.startswith(start) for p in feedback)


def test_untargeted_refine_always_runs_every_round() -> None:
    counts = {"critique": 0, "improve": 0}

    def reply(prompt: str, i: int) -> str:
        if "Based on your review" in prompt:
            counts["improve"] += 1
            return f"Improved: the answer is {31 + counts['improve']}"
        if "Review your previous answer" in prompt:
            counts["critique"] += 1
            return "It is correct."  # no stopping test: the loop goes on regardless
        return "the answer is 31"

    result = run("untargeted_refine", ScriptedBackend(reply), rounds=3)
    assert counts == {"critique": 3, "improve": 3}
    assert result.answer == "34" and result.outputs["first"] == "31"


def step_script(steps: list[str], redo: str, bad: str) -> tuple[ScriptedBackend, list[str]]:
    """Steps by position; a step containing ``bad`` gets a low P(True); redoing gives ``redo``."""
    redone: list[str] = []

    def reply(prompt: str, i: int) -> str:
        prefill = assistant_prefill(prompt)
        if "Wait, this step may be wrong" in prefill:
            redone.append(prefill)
            return redo
        if prefill.endswith("The answer is"):
            return " 7"
        done = prefill.count("\n")
        return steps[done] if done < len(steps) else "more"

    def scores(prompt: str, continuation: str) -> float:
        step = re.search(r"New step: (.*)", prompt).group(1)  # type: ignore[union-attr]
        p = 0.1 if bad in step else 0.9
        return math.log(p if continuation == " (A)" else 1 - p)

    return ScriptedBackend(reply, scores=scores), redone


def test_step_correction_redoes_flagged_steps_and_stops_at_the_answer() -> None:
    backend, redone = step_script(["Kofi has 16 shells.", "16 * 2 = 30", "The answer is 32."], "16 * 2 = 32", "= 30")
    result = run("step_correction", backend)
    assert result.answer == "32" and result.outputs["corrections"] == 1
    assert result.outputs["solution"] == "Kofi has 16 shells.\n16 * 2 = 32\nThe answer is 32.\n"
    assert len(redone) == 1 and redone[0].endswith("16 * 2 = 30 Wait, this step may be wrong. Let me redo it.\n")
    stepped = [r for r in generations(backend) if r.stop == ("\n",) and r.temperature == 0]
    assert len(stepped) == 3  # no fourth step once "The answer is" appeared
    assert result.score == pytest.approx((0.9 + 0.1 + 0.9) / 3)


def test_step_correction_caps_steps_and_retries() -> None:
    backend, redone = step_script(["a = 30"] * 10, "still = 30", "= 30")
    result = run("step_correction", backend, max_steps=3, retries=2)
    new_steps = [
        r
        for r in generations(backend)
        if r.temperature == 0
        and r.stop == ("\n",)
        and not assistant_prefill(r.prompt.canonical()).endswith("The answer is")
    ]
    assert len(new_steps) == 3  # max_steps
    assert len(redone) == 3 * 2  # every step redone `retries` times
    assert result.outputs["corrections"] == 3
    assert result.answer == "7"  # completed by the final call
    assert result.cost.calls == result.bound["calls"]
