"""Task-group failures collapse to one located sfdsl error."""

from __future__ import annotations

import pytest

from sfdsl.errors import BackendError, StepError
from sfdsl.runtime.failures import as_sfdsl_error, leaves, pick, reraise


class Flow(Exception):
    pass


def test_leaves_flatten_nested_groups() -> None:
    a, b, c = ValueError("a"), KeyError("b"), BackendError("c")
    group = ExceptionGroup("outer", [a, ExceptionGroup("inner", [b, c])])
    assert leaves(group) == [a, b, c]
    assert leaves(a) == [a]


def test_pick_prefers_control_flow_then_sfdsl_errors_then_others() -> None:
    foreign, ours, flow = ValueError("x"), BackendError("y"), Flow()
    assert pick(ExceptionGroup("g", [foreign, ours])) is ours
    assert pick(ExceptionGroup("g", [foreign, ExceptionGroup("h", [ours, flow])]), (Flow,)) is flow
    assert pick(ExceptionGroup("g", [foreign])) is foreign


def test_foreign_errors_are_wrapped_and_sfdsl_errors_located_once() -> None:
    cause = ZeroDivisionError("division by zero")
    wrapped = as_sfdsl_error(cause, location="r.sf:4:2", node_id="r/x")
    assert isinstance(wrapped, StepError) and wrapped.__cause__ is cause
    assert str(wrapped) == "r.sf:4:2: ZeroDivisionError: division by zero"
    ours = BackendError("down")
    assert as_sfdsl_error(ours, location="r.sf:1:1") is ours and ours.location == "r.sf:1:1"
    assert as_sfdsl_error(ours, location="r.sf:9:9").location == "r.sf:1:1"


def test_reraise_keeps_the_cause() -> None:
    error = as_sfdsl_error(ValueError("v"), location="r.sf:1:1")
    with pytest.raises(StepError) as caught:
        try:
            raise ExceptionGroup("g", [error])
        except* StepError as group:
            reraise(pick(group))
    assert isinstance(caught.value.__cause__, ValueError)
