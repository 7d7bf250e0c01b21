"""Failures inside a run become one located sfdsl error: task-group failures unwrapped, foreign errors wrapped."""

from __future__ import annotations

from typing import NoReturn

from sfdsl.errors import SfdslError, StepError


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group holds, however deeply nested; a plain exception is its own leaf."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def pick(exc: BaseException, control: tuple[type[BaseException], ...] = ()) -> BaseException:
    """The one exception a failed task group stands for.

    Control-flow exceptions (a recipe's return, a loop's stop) come first, then
    sfdsl errors, then any other failure; cancellations only when nothing else failed.
    """
    found = leaves(exc)
    for kinds in (control, (SfdslError,), (Exception,)):
        for leaf in found:
            if kinds and isinstance(leaf, kinds):
                return leaf
    return found[0]


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` as it is, keeping its own ``__cause__`` (and no group as its context)."""
    raise exc from exc.__cause__


def as_sfdsl_error(exc: BaseException, *, location: str | None, node_id: str | None = None) -> SfdslError:
    """``exc`` located at a .sf step: sfdsl errors keep their class, anything else becomes a StepError.

    The original exception of a wrapped error is its ``__cause__``.
    """
    if isinstance(exc, SfdslError):
        exc.locate(location, node_id)
        return exc
    error = StepError(f"{type(exc).__name__}: {exc}", node_id=node_id, location=location)
    error.__cause__ = exc
    return error
