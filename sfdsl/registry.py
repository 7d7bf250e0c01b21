"""The registry of step kinds: every module of sfdsl/steps/, proved complete when this module is imported.

A step kind is the grammar rule plus one module in sfdsl/steps/ defining ``KIND = StepKind(...)`` (see
docs/extending.md). Importing the registry fails, naming the kind, when a module declares no kind or an
incomplete one, when a kind's grammar rule is missing, or when a step rule of the grammar has no kind.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import sfdsl.steps
from sfdsl.declarations import resolve_reference
from sfdsl.grammar.loader import grammar_text
from sfdsl.step_kind import StepKind, StepKindError

#: The grammar rule listing every step a statement may hold.
STEP_LIST_RULE = "_rhs"


def _grammar_rules(text: str) -> tuple[set[str], list[str]]:
    """Every rule name of the grammar, and the alternatives of the step list, in order."""
    rules = set(re.findall(r"^[?!]*(\w+)\s*:", text, re.MULTILINE)) | set(re.findall(r"->\s*(\w+)", text))
    match = re.search(rf"^{STEP_LIST_RULE}\s*:(.*?)(?=^\S)", text, re.MULTILINE | re.DOTALL)
    listed = re.findall(r"\w+", match.group(1)) if match else []
    return rules, [name for name in listed if name != "expr"]


def step_modules() -> list[ModuleType]:
    """Every module of the sfdsl.steps package, imported."""
    return [importlib.import_module(f"sfdsl.steps.{info.name}") for info in pkgutil.iter_modules(sfdsl.steps.__path__)]


def collect(modules: Iterable[ModuleType], grammar: str) -> dict[str, StepKind]:
    """The step kinds the modules declare, in the grammar's order, checked against the grammar.

    Raises:
        StepKindError: naming the module or kind that is missing or inconsistent.
    """
    found: dict[str, StepKind] = {}
    for module in modules:
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, StepKind):
            raise StepKindError(f"step module {module.__name__} declares no `KIND = StepKind(...)`")
        if kind.name in found:
            raise StepKindError(f"step kind '{kind.name}' is declared twice ({module.__name__})")
        found[kind.name] = kind
    rules, listed = _grammar_rules(grammar)
    by_rule = {kind.rule: kind for kind in found.values()}
    for kind in found.values():
        for rule in (kind.rule, *kind.rules):
            if rule not in rules:
                raise StepKindError(f"step kind '{kind.name}': grammar/sf.lark has no rule '{rule}'")
        if kind.rule not in listed:
            raise StepKindError(f"step kind '{kind.name}': its rule '{kind.rule}' is not an alternative of "
                                f"`{STEP_LIST_RULE}` in grammar/sf.lark")
    for rule in listed:
        if rule not in by_rule:
            raise StepKindError(f"grammar rule '{rule}' is a step but no module of sfdsl/steps/ declares it")
    return {by_rule[rule].name: by_rule[rule] for rule in listed}


#: Every step kind by name, in the grammar's order.
KINDS: Mapping[str, StepKind] = collect(step_modules(), grammar_text())

#: Parser callbacks of every rule the step kinds build: ``callback(builder, children, meta)``.
BUILDERS: Mapping[str, Callable[..., Any]] = {
    rule: callback
    for kind in KINDS.values()
    for rule, callback in ((str(kind.rule), kind.build), *kind.rules.items())
    if callback is not None
}


def kind_of(node: Any) -> StepKind:
    """The step kind of a step node."""
    return KINDS[node.kind]


def runner(kind: StepKind) -> Callable[..., Any]:
    """The run implementation a kind names, imported on first use (the front end never imports the runtime).

    Raises:
        StepKindError: when the named module or function does not exist.
    """
    try:
        return resolve_reference(kind.runtime or "")  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise StepKindError(f"step kind '{kind.name}': runtime {kind.runtime!r} does not exist") from exc


def runners() -> dict[str, Callable[..., Any]]:
    """Every kind's run implementation, by kind name."""
    return {name: runner(kind) for name, kind in KINDS.items()}
