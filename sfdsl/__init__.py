"""sfdsl: a declarative language and async runtime for LLM self-feedback workflows.

The public names are imported lazily, so ``import sfdsl.parser`` (or the checker, or the
compiler) loads no runtime module.

Example:
    >>> import sfdsl
    >>> program = sfdsl.load("recipes/self_consistency.sf")      # doctest: +SKIP
    >>> program.recipe().run(question="What is 2 + 3?").answer    # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Public name → the module that defines it.
_EXPORTS = {
    "Program": "sfdsl.api",
    "Recipe": "sfdsl.api",
    "compile": "sfdsl.api",
    "load": "sfdsl.api",
    "BackendError": "sfdsl.errors",
    "BudgetExceeded": "sfdsl.errors",
    "CompileError": "sfdsl.errors",
    "EventLoopError": "sfdsl.errors",
    "InputError": "sfdsl.errors",
    "InternalError": "sfdsl.errors",
    "OverCapError": "sfdsl.errors",
    "Caps": "sfdsl.admission",
    "admit": "sfdsl.admission",
    "ModelNotFoundError": "sfdsl.errors",
    "RuntimeClosed": "sfdsl.errors",
    "SfdslError": "sfdsl.errors",
    "StepError": "sfdsl.errors",
    "ScriptedBackend": "sfdsl.runtime.backends.scripted",
    "Budget": "sfdsl.runtime.context",
    "RunResult": "sfdsl.runtime.results",
    "Runtime": "sfdsl.runtime.session",
}

__all__ = [
    "BackendError",
    "Budget",
    "BudgetExceeded",
    "Caps",
    "CompileError",
    "EventLoopError",
    "InputError",
    "InternalError",
    "ModelNotFoundError",
    "OverCapError",
    "Program",
    "Recipe",
    "RunResult",
    "Runtime",
    "RuntimeClosed",
    "ScriptedBackend",
    "SfdslError",
    "StepError",
    "admit",
    "compile",
    "load",
]

if TYPE_CHECKING:
    from sfdsl.admission import Caps, admit
    from sfdsl.api import Program, Recipe, compile, load
    from sfdsl.errors import (
        BackendError,
        BudgetExceeded,
        CompileError,
        EventLoopError,
        InputError,
        InternalError,
        ModelNotFoundError,
        OverCapError,
        RuntimeClosed,
        SfdslError,
        StepError,
    )
    from sfdsl.runtime.backends.scripted import ScriptedBackend
    from sfdsl.runtime.context import Budget
    from sfdsl.runtime.results import RunResult
    from sfdsl.runtime.session import Runtime


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sfdsl' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
