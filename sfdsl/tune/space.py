"""The search space of ``sfrun tune``: ranges and choices over recipe inputs, checked before anything runs.

A ``--space`` spec is one of::

    n=1..16            an int range (both ends included)
    n=1..32:log        an int range sampled on a log scale
    temperature=0.3..1.0    a float range (``:log`` too)
    threshold=[0.5,0.7,0.9] a set of choices (JSON values; bare words are strings)

When several recipes are tuned, the recipe itself is one more choice (``recipe``); a spec applies to the
recipes that declare its input.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfdsl.errors import InputError, SfdslError

#: The name of the recipe choice in a study.
RECIPE = "recipe"

_RANGE = re.compile(r"^\s*([-+]?[\d.eE+-]+)\s*\.\.\s*([-+]?[\d.eE+-]+)\s*(?::\s*(log))?\s*$")
_INT = re.compile(r"^[-+]?\d+$")

#: ``await probe(label, inputs)`` raises an SfdslError when the recipe ``label`` refuses these inputs.
Probe = Callable[[str, dict[str, Any]], Awaitable[None]]


class SpaceError(InputError):
    """Raised when a ``--space`` spec is malformed or does not fit the recipes' inputs."""


@dataclass(frozen=True)
class Dimension:
    """One searched input.

    Attributes:
        name: The recipe input.
        kind: ``int``, ``float`` or ``choice``.
        low, high: Range ends (ranges only).
        log: Sampled on a log scale.
        choices: The values (choices only).
        recipes: Labels of the recipes that declare the input.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()
    recipes: tuple[str, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log)
        return CategoricalDistribution(list(self.choices))

    def values(self) -> list[Any] | None:
        """Every value, for a finite dimension; None for a float range."""
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        if self.kind == "choice":
            return list(self.choices)
        return None

    def describe(self) -> str:
        if self.kind == "choice":
            return f"{self.name} in {list(self.choices)}"
        return f"{self.name} in {self.low:g}..{self.high:g}{' (log)' if self.log else ''}"


@dataclass(frozen=True)
class Config:
    """One configuration: a recipe and the values of its searched inputs."""

    recipe: str
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable text identity (recipe and sorted inputs)."""
        return json.dumps([self.recipe, dict(self.inputs)], sort_keys=True, default=str)

    def params(self, several: bool) -> dict[str, Any]:
        """The Optuna parameters of this configuration."""
        return {**({RECIPE: self.recipe} if several else {}), **self.inputs}

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.inputs.items()))
        return f"{self.recipe}({shown})" if shown else self.recipe


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Space:
    """The recipes tuned and the searched inputs."""

    recipes: tuple[str, ...]
    dims: tuple[Dimension, ...]

    @property
    def several(self) -> bool:
        return len(self.recipes) > 1

    def distributions(self, recipe: str) -> dict[str, Any]:
        """The Optuna distributions a trial of ``recipe`` samples (the recipe choice first)."""
        from optuna.distributions import CategoricalDistribution

        out: dict[str, Any] = {RECIPE: CategoricalDistribution(list(self.recipes))} if self.several else {}
        out.update({d.name: d.distribution() for d in self.dims if recipe in d.recipes})
        return out

    def suggest(self, trial: Any) -> Config:
        """The configuration an Optuna trial proposes (its inputs depend on the recipe chosen)."""
        recipe = trial.suggest_categorical(RECIPE, list(self.recipes)) if self.several else self.recipes[0]
        inputs: dict[str, Any] = {}
        for d in self.dims:
            if recipe not in d.recipes:
                continue
            if d.kind == "int":
                inputs[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), log=d.log)
            elif d.kind == "float":
                inputs[d.name] = trial.suggest_float(d.name, d.low, d.high, log=d.log)
            else:
                inputs[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        return Config(recipe, inputs)

    def from_params(self, params: Mapping[str, Any]) -> Config:
        """The configuration of a stored trial's parameters."""
        recipe = str(params[RECIPE]) if self.several else self.recipes[0]
        names = {d.name for d in self.dims if recipe in d.recipes}
        return Config(recipe, {k: v for k, v in params.items() if k in names})

    def grid(self) -> list[Config] | None:
        """Every configuration, when the space is finite; None when a float range makes it infinite."""
        out: list[Config] = []
        for recipe in self.recipes:
            dims = [d for d in self.dims if recipe in d.recipes]
            values = [d.values() for d in dims]
            if any(v is None for v in values):
                return None
            for combo in itertools.product(*[v for v in values if v is not None]):
                out.append(Config(recipe, {d.name: v for d, v in zip(dims, combo, strict=True)}))
        return out


def parse_space(
    specs: Sequence[str],
    input_types: Mapping[str, Mapping[str, str | None]],
    *,
    fixed: Mapping[str, Any] | None = None,
    columns: Sequence[str] = (),
) -> Space:
    """Parse ``--space`` specs against the recipes' inputs.

    Args:
        specs: ``NAME=SPEC`` strings.
        input_types: Per recipe label, its inputs and their type names.
        fixed: Inputs fixed with ``-i`` (they cannot also be searched).
        columns: Inputs fed from the data (they cannot be searched).

    Raises:
        SpaceError: naming the spec and what is wrong with it.
    """
    dims: list[Dimension] = []
    seen: set[str] = set()
    for spec in specs:
        name, sep, body = spec.partition("=")
        name = name.strip()
        if not sep or not name or not body.strip():
            raise SpaceError(f"--space expects NAME=LOW..HIGH[:log] or NAME=[A,B,...], got {spec!r}")
        if name in seen:
            raise SpaceError(f"--space {name} is given twice")
        seen.add(name)
        if name == RECIPE:
            raise SpaceError("--space recipe: the recipe choice comes from the recipes given; list them instead")
        owners = [label for label, types in input_types.items() if name in types]
        if not owners:
            known = sorted({n for types in input_types.values() for n in types})
            raise SpaceError(f"--space {name}: no recipe has an input {name!r} (inputs: {', '.join(known)})")
        if name in (fixed or {}):
            raise SpaceError(f"--space {name}: the input is also fixed with -i; drop one of them")
        if name in columns:
            raise SpaceError(f"--space {name}: the input is fed from the data; it cannot be searched")
        types = {input_types[label][name] for label in owners}
        dims.append(_parse_body(name, body.strip(), types, tuple(owners)))
    return Space(recipes=tuple(input_types), dims=tuple(dims))


def _parse_body(name: str, body: str, types: set[str | None], owners: tuple[str, ...]) -> Dimension:
    where = f"--space {name}"
    if body.startswith("["):
        if not body.endswith("]"):
            raise SpaceError(f"{where}: a list of choices must end with ']', got {body!r}")
        raw = [part.strip() for part in body[1:-1].split(",")]
        if not raw or any(not part for part in raw):
            raise SpaceError(f"{where}: empty choice in {body!r}")
        choices = tuple(_coerce(_json_or_word(part), types, where) for part in raw)
        if len(set(map(repr, choices))) != len(choices):
            raise SpaceError(f"{where}: a choice is listed twice in {body!r}")
        return Dimension(name, "choice", choices=choices, recipes=owners)
    match = _RANGE.match(body)
    if not match:
        raise SpaceError(f"{where}: expected LOW..HIGH[:log] or [A,B,...], got {body!r}")
    lo_text, hi_text, log = match.group(1), match.group(2), bool(match.group(3))
    if types <= {"int"}:
        if not (_INT.match(lo_text) and _INT.match(hi_text)):
            raise SpaceError(f"{where}: {name} is an int input, so its range needs int ends, got {body!r}")
        kind, low, high = "int", float(int(lo_text)), float(int(hi_text))
    elif types <= {"float", "int"}:
        if "int" in types:
            raise SpaceError(f"{where}: {name} is an int in one recipe and a float in another; use a list")
        kind = "float"
        try:
            low, high = float(lo_text), float(hi_text)
        except ValueError:
            raise SpaceError(f"{where}: not a number range: {body!r}") from None
    else:
        shown = "/".join(sorted(str(t) for t in types))
        raise SpaceError(f"{where}: {name} is a {shown} input; a range needs an int or float input, use [A,B,...]")
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise SpaceError(f"{where}: the range must go from a lower to a higher number, got {body!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log range must start above 0, got {body!r}")
    return Dimension(name, kind, low=low, high=high, log=log, recipes=owners)


def _json_or_word(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _coerce(value: Any, types: set[str | None], where: str) -> Any:
    from sfdsl.inputs import convert

    out = value
    for type_name in types:
        if type_name is None:
            continue
        given = str(value) if type_name == "str" and not isinstance(value, str) else value
        try:
            out = convert(given, type_name, name=where, from_text=isinstance(given, str))
        except SfdslError as exc:
            raise SpaceError(f"{where}: {value!r} is not a valid {type_name}: {exc}") from None
    return out


async def probe_space(space: Space, probe: Probe) -> None:
    """Ask every recipe that declares a searched input about each range end and each choice.

    Raises:
        SpaceError: naming the input, the value and the recipe's own complaint.
    """
    for dim in space.dims:
        if dim.kind == "choice":
            values: list[Any] = list(dim.choices)
        elif dim.kind == "int":
            values = [int(dim.low), int(dim.high)]
        else:
            values = [dim.low, dim.high]
        for label in dim.recipes:
            for value in values:
                try:
                    await probe(label, {dim.name: value})
                except SfdslError as exc:
                    lines = [ln.strip() for ln in str(exc).splitlines() if not ln.strip().startswith("For further")]
                    reason = " ".join(" ".join(lines).split())
                    if exc.location and not reason.startswith(exc.location):
                        reason = f"{exc.location}: {reason}"
                    raise SpaceError(f"--space {dim.name}: {label} refuses {dim.name}={value!r}: {reason}") from None
