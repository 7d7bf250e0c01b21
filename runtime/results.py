"""Typed results of a run: the recipe's answer, per-step records and total cost."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sfdsl.agent_values import ToolCall


class Cost(BaseModel):
    """What a run (or a step) spent."""

    calls: int = 0  # model calls made by steps (one per generate, score or choice step execution)
    requests: int = 0  # requests actually sent to an engine or server (an n=5 call may need 5; a cache hit, 0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_calls: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens served from the engine's prefix cache, not decoded
    wall_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Cost) -> None:
        """Accumulate another cost into this one (wall time excluded)."""
        self.calls += other.calls
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_calls += other.cached_calls
        self.cached_prompt_tokens += other.cached_prompt_tokens


class StepRecord(BaseModel):
    """One executed plan node: what went in, what came out, what it cost."""

    node_id: str
    kind: str
    location: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    output: Any = None
    cost: Cost = Field(default_factory=Cost)
    started_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None


class RunResult(BaseModel):
    """The outcome of one recipe run.

    ``answer``, ``score``, ``abstained`` and ``reason`` are the recipe's
    structured return; ``outputs`` holds every returned field (``answer``
    and ``score`` included) as plain JSON-able data. ``answer`` is a JSON
    object when the recipe returns a schema-constrained record.
    ``tool_calls`` holds the tool calls the recipe returned (empty when it
    returned none); ``truncated`` is true when a token limit or budget cut
    short a generation that the answer was read from: a generation whose
    finish is ``length`` (the step's ``max_tokens``, or the run's token budget
    capping it) that the returned ``answer`` (or ``tool_calls``) depends on,
    through any steps, loops and called recipes. A budget that stops the run
    raises ``BudgetExceeded`` instead (its ``partial`` says ``stopped``).
    """

    run_id: str
    recipe: str
    answer: Any = None
    score: float | None = None
    abstained: bool = False
    reason: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    cost: Cost = Field(default_factory=Cost)
    seed: int = 0
    bound: dict[str, int] | None = None
    error: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    truncated: bool = False

    def summary(self) -> dict[str, Any]:
        """The user-facing part of the result, without step records."""
        return {
            "run_id": self.run_id,
            "recipe": self.recipe,
            "answer": self.answer,
            "score": self.score,
            "abstained": self.abstained,
            "reason": self.reason,
            "outputs": self.outputs,
            "cost": self.cost.model_dump(),
            "seed": self.seed,
            "bound": self.bound,
            "tool_calls": [call.model_dump() for call in self.tool_calls],
            "truncated": self.truncated,
        }
