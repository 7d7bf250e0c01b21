"""Run-time values of .sf programs: generations, scores, votes, and the typed "no answer".

Every record exposes only its declared fields to recipes (``FIELDS``); nothing
else of the Python object is reachable from a recipe or a template. A step kind
with a value of its own subclasses ``Record`` (e.g. ``Clusters``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from sfdsl.agent_values import Message, ToolCall, ToolSpec, canonical_call_key


class Record:
    """Base of run-time records: the fields recipes may read, the value it stands for, what `return` gives."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def primary(self) -> Any:
        """The value the record stands for when used as an answer (a vote → its answer)."""
        return self

    def as_result(self) -> dict[str, Any]:
        """The outputs of `return STEP` when the step's value is this record."""
        return {"answer": self.primary()}

    def as_json(self) -> Any:
        """The record as JSON-able data (results, traces): its primary value's."""
        return plain(self.primary())


@dataclass(frozen=True)
class NoAnswer(Record):
    """A failed extraction: compares unequal to everything, renders as empty text."""

    reason: str = "no answer"
    FIELDS: ClassVar[tuple[str, ...]] = ("reason",)

    def __bool__(self) -> bool:
        return False

    def __str__(self) -> str:
        return ""


@dataclass(frozen=True)
class Text(Record):
    """One generated sample."""

    text: str
    tokens: int = 0
    prompt_tokens: int = 0
    logprob: float | None = None
    finish: str = "stop"
    index: int = 0
    rounds: int = 1
    FIELDS: ClassVar[tuple[str, ...]] = ("text", "tokens", "prompt_tokens", "logprob", "finish", "index", "rounds")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Score(Record):
    """A self-evaluation: a score in [0, 1], a label, and what it was read from."""

    score: float
    label: str = ""
    logprob: float | None = None
    text: str = ""
    probs: tuple[float, ...] = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("score", "label", "logprob", "text", "probs")

    def as_result(self) -> dict[str, Any]:
        return {"answer": self.label, "score": self.score}

    def __str__(self) -> str:
        return f"{self.score:.3f}"


@dataclass(frozen=True)
class VoteOutcome(Record):
    """The winner of a vote and its share of the (weighted) votes.

    ``share`` is the winner's weight over the weight of the samples that gave an
    answer; ``share_all`` over the weight of all ``total`` samples (a sample with no
    answer counts in the denominator); ``margin`` is the winner's weight minus the
    runner-up's (the vote counts' difference for a majority vote).
    """

    answer: Any
    share: float
    votes: int
    total: int
    counts: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    share_all: float = 0.0
    margin: float = 0.0
    FIELDS: ClassVar[tuple[str, ...]] = (
        "answer", "share", "share_all", "margin", "votes", "total", "counts", "stopped_early"
    )

    def primary(self) -> Any:
        return self.answer

    def as_result(self) -> dict[str, Any]:
        return {"answer": self.answer, "score": self.share}

    def __str__(self) -> str:
        return str(self.answer)


@dataclass(frozen=True)
class RefineOutcome(Record):
    """The kept iterate of a refine loop, with its history."""

    value: Any
    score: float | None
    rounds: int
    history: tuple[dict[str, Any], ...]
    first: Any
    stopped: bool
    FIELDS: ClassVar[tuple[str, ...]] = ("value", "score", "rounds", "history", "first", "stopped")

    def primary(self) -> Any:
        return self.value

    def as_result(self) -> dict[str, Any]:
        return {"answer": self.value, "score": self.score, "first": self.first}

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class SearchOutcome(Record):
    """The best state a tree search reached."""

    best: str
    value: float
    path: tuple[str, ...]
    nodes: int
    simulations: int = 0
    FIELDS: ClassVar[tuple[str, ...]] = ("best", "value", "path", "nodes", "simulations")

    def primary(self) -> Any:
        return self.best

    def __str__(self) -> str:
        return self.best


@dataclass(frozen=True)
class Action(Record):
    """The action a model chose (`act`): a call of one of the tools, or a final text answer.

    ``kind`` is ``"call"`` (``name`` and ``arguments`` are set) or ``"text"`` (``text`` is set).
    Two calls are the same answer when their ``key`` is (the name and the canonical arguments).
    """

    kind: str
    id: str = ""
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    FIELDS: ClassVar[tuple[str, ...]] = ("kind", "id", "name", "arguments", "text")

    @property
    def key(self) -> str:
        """The canonical identity of the action, for votes and clusters."""
        return canonical_call_key(self.name, self.arguments) if self.kind == "call" else self.text.strip()

    def to_call(self) -> ToolCall:
        """The call in the contract's shape (sfdsl.agent_values.ToolCall)."""
        return ToolCall(id=self.id, name=self.name, arguments=self.arguments)

    def as_json(self) -> Any:
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        """Actions are equal when they are the same call (name and canonical arguments) or the same text."""
        return isinstance(other, Action) and (self.kind, self.key) == (other.kind, other.key)

    def __hash__(self) -> int:
        return hash((self.kind, self.key))

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class CallOutcome(Record):
    """The structured result of a called recipe; ``tool_calls`` holds the calls it returned."""

    answer: Any
    score: float | None
    abstained: bool
    reason: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False  # the answer came from a generation its token limit cut short
    tool_calls: tuple[ToolCall, ...] = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("answer", "score", "abstained", "reason")

    def primary(self) -> Any:
        return self.answer

    def __str__(self) -> str:
        return str(self.answer)


#: Every record type (kept for callers that test ``isinstance(value, RECORD_TYPES)``).
RECORD_TYPES: tuple[type, ...] = (Record,)


def _message_fields(m: Message) -> dict[str, Any]:
    calls = [c.model_dump(exclude_none=True) for c in m.tool_calls or ()]
    return {"role": m.role, "content": m.text, "text": m.text, "name": m.name, "tool_calls": calls,
            "tool_call_id": m.tool_call_id}


def _tool_fields(t: ToolSpec) -> dict[str, Any]:
    f = t.function
    return {"type": t.type, "name": f.name, "description": f.description, "parameters": f.parameters,
            "function": f.model_dump(exclude_none=True)}


def _call_fields(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "arguments": c.arguments}


#: The fields recipes and templates read of the agent values (sfdsl/agent_values.py), by their class.
_WIRE_FIELDS: dict[type, Any] = {Message: _message_fields, ToolSpec: _tool_fields, ToolCall: _call_fields}


def wire_fields(value: BaseModel) -> dict[str, Any] | None:
    """The readable fields of a conversation message, tool spec or tool call; None for other values."""
    fields = _WIRE_FIELDS.get(type(value))
    return fields(value) if fields is not None else None


def field_of(value: Any, name: str) -> Any:
    """Read a declared field of a run-time value; ``KeyError`` when it has none."""
    if isinstance(value, CallOutcome) and name not in CallOutcome.FIELDS and name in value.outputs:
        return value.outputs[name]
    if isinstance(value, Record) and name in value.FIELDS:
        return getattr(value, name)
    if isinstance(value, dict) and name in value:
        return value[name]
    if isinstance(value, BaseModel):
        fields = wire_fields(value)
        if fields is not None and name in fields:
            return fields[name]
    raise KeyError(name)


#: Fields a list of records exposes element-wise, e.g. ``samples.text``.
VECTORISED_FIELDS = frozenset({"text", "score", "label", "answer", "logprob", "tokens"})


def attr_of(value: Any, name: str) -> Any:
    """``value.name`` as recipes and prompt templates both read it; ``KeyError`` when there is no such field.

    Of a list of dict records (a refine's history), the field of each, a missing or empty one being no answer;
    of another list, the field of each item for the ``VECTORISED_FIELDS`` (``samples.text``); else ``field_of``.
    """
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
        return [v[name] if v.get(name) is not None else NoAnswer(f"no {name}") for v in value]
    if isinstance(value, (list, tuple)) and name in VECTORISED_FIELDS:
        return [field_of(v, name) if not isinstance(v, NoAnswer) else v for v in value]
    return field_of(value, name)


def plain(value: Any) -> Any:
    """Convert a run-time value to JSON-able data (for results, traces and templates)."""
    if isinstance(value, NoAnswer):
        return None
    if isinstance(value, Text):
        return str(value)
    if isinstance(value, Score):
        return value.score
    if isinstance(value, Record):
        return value.as_json()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    return value


def record(value: Any) -> Any:
    """Convert a run-time value to a JSON-able record with all its fields."""
    if isinstance(value, Record):
        return {name: record(getattr(value, name)) for name in value.FIELDS}
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, (list, tuple)):
        return [record(v) for v in value]
    if isinstance(value, dict):
        return {str(k): record(v) for k, v in value.items()}
    return value


def split_actions(answer: Any, tool_calls: Any) -> tuple[Any, list[ToolCall]]:
    """A recipe's returned answer and ``tool_calls`` field as (answer, the tool calls chosen).

    Call actions, given as the answer or in ``tool_calls`` (one action or a list), become tool calls;
    a text action as the answer becomes its text; an answer of only calls becomes None.
    """
    answer = primary(answer)
    calls: list[ToolCall] = []
    for value in tool_calls if isinstance(tool_calls, (list, tuple)) else [tool_calls]:
        value = primary(value)
        if isinstance(value, Action) and value.kind == "call":
            calls.append(value.to_call())
        elif isinstance(value, ToolCall):
            calls.append(value)
    items = answer if isinstance(answer, (list, tuple)) else [answer]
    actions = [a for a in items if isinstance(a, Action)]
    if not actions:
        return answer, calls
    seen = {(c.id, c.key) for c in calls}
    calls[:0] = [a.to_call() for a in actions if a.kind == "call" and (a.id, a.key) not in seen]
    texts = [a.text for a in actions if a.kind == "text"]
    return ("\n".join(texts) if texts else None), calls


def primary(value: Any) -> Any:
    """The value a composite stands for when used as an answer (vote → its answer)."""
    return value.primary() if isinstance(value, Record) else value
