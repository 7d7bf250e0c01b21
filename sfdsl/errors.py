"""The sfdsl error tree: every error a user can see derives from SfdslError.

    SfdslError
    ├── CompileError          raised when a recipe file fails to parse or check;
    │                         carries every Diagnostic found, not just the first
    ├── SourceNotFoundError   raised when a recipe file or import does not exist
    ├── RecipeNotFoundError   raised when a named recipe is not in the program
    ├── InputError            raised when recipe inputs are missing, unknown or mistyped
    │   └── OverCapError      raised when a run's static bound with its inputs is over a cap
    ├── ModelNotFoundError    raised when a model file or alias cannot be resolved
    ├── BackendError          raised when a model backend fails (translated at the boundary)
    │   ├── BackendTimeout    raised when a backend call exceeds its deadline
    │   ├── ContextOverflow   raised when a request does not fit the model's context
    │   └── ScriptExhausted   raised when the scripted backend runs out of replies
    ├── StepError             raised when a step fails at run time (bad value, bad template, or
    │                         any foreign exception, chained as __cause__)
    ├── BudgetExceeded        raised when a run exceeds its calls, tokens or wall-clock budget;
    │                         carries the partial result
    ├── EventLoopError        raised when sync Recipe.run is called inside a running event loop
    │                         (also a RuntimeError; await recipe.arun(...) there)
    ├── RuntimeClosed         raised when a closed sfdsl.Runtime is used
    └── InternalError         raised when sfdsl itself fails unexpectedly (a bug; please report it)

Errors raised while a run executes carry ``location``, the ``file:line:col``
of the failing .sf step (the recipe's when no step was running), and
``node_id``, the step's path in the plan; ``located()`` is the one-line form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sfdsl.diagnostics import Diagnostic


class SfdslError(Exception):
    """Root of every error sfdsl raises on purpose."""

    location: str | None = None
    node_id: str | None = None

    def locate(self, location: str | None, node_id: str | None = None) -> None:
        """Record where the error happened, unless a more precise place is already known."""
        if self.location is None:
            self.location = location
        if self.node_id is None:
            self.node_id = node_id

    def located(self) -> str:
        """One line: ``file:line:col: message`` (the first line of the message when it has several)."""
        lines = str(self).strip().splitlines()
        message = lines[0] if lines else type(self).__name__
        if self.location and not message.startswith(self.location):
            return f"{self.location}: {message}"
        return message


class CompileError(SfdslError):
    """Raised when a recipe file fails to parse or check."""

    def __init__(self, *, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None) -> None:
        self.diagnostics = diagnostics
        self.sources = sources or {}
        super().__init__(self.render())

    def render(self) -> str:
        """All diagnostics, gcc-style, with source lines and carets."""
        from sfdsl.diagnostics import render_all

        return render_all(self.diagnostics, self.sources)


class SourceNotFoundError(SfdslError):
    """Raised when a recipe file or an imported file does not exist."""


class RecipeNotFoundError(SfdslError):
    """Raised when a named recipe is not in the program."""


class InputError(SfdslError):
    """Raised when recipe inputs are missing, unknown or of the wrong type."""


class OverCapError(InputError):
    """Raised when a run's static cost bound, computed with its inputs, is over a cap (``sfdsl.admission``).

    ``cap`` names the cap (``max_request_calls``...), ``limit`` is its value and ``bound`` the run's.
    """

    def __init__(self, message: str, *, cap: str, limit: int, bound: int) -> None:
        self.cap, self.limit, self.bound = cap, limit, bound
        super().__init__(message)


class ModelNotFoundError(SfdslError):
    """Raised when a model file or alias cannot be resolved."""


class BackendError(SfdslError):
    """Raised when a model backend fails; low-level errors are chained as __cause__."""


class BackendTimeout(BackendError):
    """Raised when a backend call exceeds its deadline."""


class ContextOverflow(BackendError):
    """Raised when a request does not fit in the model's context window."""


class ScriptExhausted(BackendError):
    """Raised when the scripted backend has no reply left for a request."""


class StepError(SfdslError):
    """Raised when a step fails at run time."""

    def __init__(self, message: str, *, node_id: str | None = None, location: str | None = None) -> None:
        self.node_id, self.location = node_id, location
        prefix = f"{location}: " if location else ""
        super().__init__(f"{prefix}{message}")


class BudgetExceeded(SfdslError):
    """Raised when a run exceeds its budget; `partial` holds what was computed so far."""

    def __init__(self, message: str, *, partial: Any = None) -> None:
        self.partial = partial
        super().__init__(message)


class EventLoopError(SfdslError, RuntimeError):
    """Raised when the sync ``Recipe.run`` is called inside a running event loop; use ``await recipe.arun(...)``."""


class RuntimeClosed(SfdslError):
    """Raised when a closed ``sfdsl.Runtime`` is used."""


class InternalError(SfdslError):
    """Raised when sfdsl itself fails unexpectedly; the original exception is chained as __cause__."""
