"""sfdsl: a declarative language and async runtime for LLM self-feedback workflows.

Example:
    >>> import sfdsl
    >>> program = sfdsl.load("recipes/self_consistency.sf")      # doctest: +SKIP
    >>> program.recipe().run(question="What is 2 + 3?").answer    # doctest: +SKIP
"""

from __future__ import annotations

from sfdsl.api import Program, Recipe, compile, load
from sfdsl.errors import (
    BackendError,
    BudgetExceeded,
    CompileError,
    EventLoopError,
    InputError,
    InternalError,
    ModelNotFoundError,
    RuntimeClosed,
    SfdslError,
    StepError,
)
from sfdsl.runtime.backends.scripted import ScriptedBackend
from sfdsl.runtime.context import Budget
from sfdsl.runtime.results import RunResult
from sfdsl.runtime_session import Runtime

__all__ = [
    "BackendError",
    "Budget",
    "BudgetExceeded",
    "CompileError",
    "EventLoopError",
    "InputError",
    "InternalError",
    "ModelNotFoundError",
    "Program",
    "Recipe",
    "RunResult",
    "Runtime",
    "RuntimeClosed",
    "ScriptedBackend",
    "SfdslError",
    "StepError",
    "compile",
    "load",
]
