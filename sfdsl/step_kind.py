"""What a step kind declares: its node, parameter spec, checks, bound, plan label and bodies, and run.

Each step kind lives in one module of sfdsl/steps/ that defines ``KIND = StepKind(...)``; sfdsl/registry.py
collects them. A kind missing a piece fails at import with an error naming the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfdsl.errors import StepError
from sfdsl.types import BOOL, FLOAT, INT, STR, Type, list_of
from sfdsl.values import primary


class StepKindError(Exception):
    """Raised at import when a step kind is declared incompletely or inconsistently."""


@dataclass(frozen=True)
class ParamSpec:
    """One step parameter: its type, default (None: none), allowed values and range, a one-line meaning, and
    optionally its own check of a literal value (``check(name, value_node, where) -> [Problem]``).

    The range (``low``, ``high``; ``low_open`` refuses ``low`` itself) is checked twice from this one place: on a
    literal by ``sfrun check`` (SF320), and on a value known only at run time by ``with_defaults``.
    """

    type: Type
    doc: str
    default: Any = None
    required: bool = False
    one_of: tuple[str, ...] = ()
    bounds_loop: bool = False  # a required loop bound: missing it is SF410 "unbounded loop"
    check: Callable[[str, Any, str], list[Any]] | None = None  # a literal value's own check (constant_checks.py)
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    #: A default computed from the other values (already completed with their defaults), e.g. the temperature
    #: from ``n``; ``default_doc`` says it in the docs tables.
    default_from: Callable[[Mapping[str, Any]], Any] | None = None
    default_doc: str = ""

    def refusal(self, value: Any) -> str | None:
        """Why a number is outside this parameter's range (e.g. ``"must be at least 1"``), or None."""
        value = primary(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # not a number: the type check's business
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'above' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None and value > self.high:
            return f"must be at most {self.high:g}"
        return None


Spec = Mapping[str, ParamSpec]

#: The temperature of a step that samples ``n > 1`` answers and gives none: they need some spread. One sample
#: is greedy (0).
SAMPLED_TEMPERATURE = 0.7


def default_temperature(values: Mapping[str, Any]) -> float:
    """The temperature when none is given: ``SAMPLED_TEMPERATURE`` for ``n > 1`` samples, else 0 (greedy)."""
    n = primary(values.get("n", 1))
    many = isinstance(n, (int, float)) and not isinstance(n, bool) and n > 1
    return SAMPLED_TEMPERATURE if many else 0.0


SAMPLING: Spec = {
    "temperature": ParamSpec(FLOAT, "sampling temperature; 0 is greedy", low=0, default_from=default_temperature,
                             default_doc=f"`{SAMPLED_TEMPERATURE:g}` when n > 1, else `0`"),
    "top_p": ParamSpec(FLOAT, "nucleus sampling mass", default=1.0, low=0, low_open=True, high=1),
    "top_k": ParamSpec(INT, "top-k cut-off; 0 disables", default=0, low=0),
    "max_tokens": ParamSpec(INT, "tokens generated at most (default: the model's, else 256)", default=256, low=1),
    "stop": ParamSpec(list_of(STR), "stop strings", default=()),
    "seed": ParamSpec(INT, "base seed; sample i uses seed + i (default: derived from the run seed)"),
}
SAMPLES: Spec = {
    **SAMPLING,
    "n": ParamSpec(INT, "number of samples, decoded as one batch (given: the value is a list)", default=1, low=1),
}
LOGPROBS = ParamSpec(BOOL, "return the samples' log-probabilities", default=False)


def with_defaults(spec: Spec, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` completed with the spec's defaults, fixed or computed (parameters without one stay absent).

    Raises:
        StepError: naming the parameter and its value, when a given value is outside the spec's range (the
            executor locates it at the step).
    """
    for name, value in given.items():
        refusal = spec[name].refusal(value) if name in spec else None
        if refusal is not None:
            raise StepError(f"parameter '{name}' is {primary(value)!r}, but {refusal}")
    values = {name: p.default for name, p in spec.items() if p.default is not None}
    values.update(given)
    for name, p in spec.items():
        if p.default_from is not None and values.get(name) is None:
            values[name] = p.default_from(values)
    return values


def _no_bodies(node: Any) -> dict[str, Any]:
    return {}


def _no_binds(node: Any) -> tuple[str, ...]:
    return ()


#: Pieces every step kind must declare.
REQUIRED_PIECES = ("node", "rule", "build", "modes", "check", "bound", "label", "runtime")


@dataclass(frozen=True)
class StepKind:
    """Everything about one step kind.

    Attributes:
        name: the node's ``kind`` discriminator and the registry key, e.g. ``"vote"``.
        doc: one line, for the docs.
        syntax: how the step is written, for the docs.
        node: the AST node class (its ``kind`` field defaults to ``name``).
        rule: the grammar rule (grammar/sf.lark) that builds the node.
        build: ``build(builder, children, meta) -> node``, called by the parser for ``rule``.
        modes: mode name → parameter spec; a kind without modes has the single mode ``""``.
        mode_field: the node field holding the mode (``mode``, ``strategy``).
        params: the parameter spec of a kind without modes: short for ``modes={"": params}, mode_field=""``.
        check: ``check(checker, node, scope) -> Type``; reports problems through the checker.
        bound: ``bound(cost_model, node, env) -> (Bound, Abstract)``, the static worst case.
        label: ``label(node) -> str``, the plan label's detail.
        runtime: ``"module:function"`` of the run implementation, an
            ``async (executor, state, node, frame, path) -> value``; resolved only when a recipe runs.
        bodies: ``bodies(node) -> {name: Block}`` of nested blocks (planned with the recipe).
        binds: ``binds(node) -> names`` the step defines inside its bodies.
        rules: extra grammar rules the kind builds, rule name → ``build``-like callback.
        supplies: template variables the step itself gives its `prompt:` parameter.
    """

    name: str
    doc: str = ""
    syntax: str = ""
    node: type | None = None
    rule: str | None = None
    build: Callable[..., Any] | None = None
    modes: Mapping[str, Spec] | None = None
    mode_field: str = "mode"
    params: Spec | None = None
    check: Callable[..., Type] | None = None
    bound: Callable[..., Any] | None = None
    label: Callable[[Any], str] | None = None
    runtime: str | None = None
    bodies: Callable[[Any], dict[str, Any]] = _no_bodies
    binds: Callable[[Any], tuple[str, ...]] = _no_binds
    rules: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    supplies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.params is not None:
            if self.modes is not None:
                raise StepKindError(f"step kind '{self.name}': give modes= or params=, not both")
            object.__setattr__(self, "modes", {"": self.params})
            object.__setattr__(self, "mode_field", "")
        missing = [piece for piece in REQUIRED_PIECES if getattr(self, piece) is None]
        if missing:
            raise StepKindError(f"step kind '{self.name}' is incomplete: it declares no {', '.join(missing)}")
        declared = getattr(self.node, "model_fields", {}).get("kind")
        if declared is None or declared.default != self.name:
            raise StepKindError(f"step kind '{self.name}': its node {self.node.__name__} must have "  # type: ignore[union-attr]
                                f"`kind: Literal[{self.name!r}] = {self.name!r}`")
        module, _, function = (self.runtime or "").partition(":")
        if not module.startswith("sfdsl.runtime.") or not function.isidentifier():
            raise StepKindError(f"step kind '{self.name}': runtime must be 'sfdsl.runtime.<module>:<function>', "
                                f"not {self.runtime!r}")

    def mode_of(self, node: Any) -> str:
        return str(getattr(node, self.mode_field, "")) if self.mode_field else ""

    def spec_of(self, node: Any) -> Spec | None:
        """The parameter spec for a node's mode; None for an unknown mode."""
        return (self.modes or {}).get(self.mode_of(node) if self.mode_field else "")
