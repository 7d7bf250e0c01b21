"""Strict JSON for requests: no NaN or infinity anywhere, and OpenAI fields of the right type, named when wrong.

Python's ``json`` accepts ``NaN``, ``Infinity`` and ``1e999`` (read as infinity); JSON does not, and
no recipe input or OpenAI field can use them. ``loads`` reads them as a marker and the request is
refused with a 400 naming the first place one occurs (``sfdsl.inputs.threshold``).

OpenAI fields the app does not model are still checked for their type (``stop: 123`` is a 400),
so a client learns of its mistake instead of the field being silently dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from sfdsl.serve.protocol import HTTPError


class _NonFinite:
    """The marker for a NaN or infinite number in a request body."""

    def __init__(self, text: str) -> None:
        self.text = text


def loads(text: str) -> Any:
    """``json.loads`` that reads NaN, Infinity and overflowing numbers as markers; see ``reject_non_finite``."""

    def number(token: str) -> Any:
        value = float(token)
        return value if math.isfinite(value) else _NonFinite(token)

    return json.loads(text, parse_constant=_NonFinite, parse_float=number)


def reject_non_finite(data: Any) -> None:
    """Raise a 400 naming the first NaN or infinite number in ``data`` (walked without recursion)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, _NonFinite):
            place = where or "body"
            raise HTTPError(400, f"'{place}' is {value.text[:40]}, which JSON does not allow; send a finite number",
                            code="invalid_number", param=place)
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(value))))


def _text_or_texts(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and len(value) <= 4
                                      and all(isinstance(v, str) for v in value))


def _number(low: float, high: float) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high

    return check


#: OpenAI request fields, by name: the check of a value and what the value must be.
OPENAI_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stop": (_text_or_texts, "a string or a list of at most 4 strings"),
    "top_p": (_number(0, 1), "a number from 0 to 1"),
    "presence_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "frequency_penalty": (_number(-2, 2), "a number from -2 to 2"),
    "max_completion_tokens": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                              "an integer of at least 1"),
    "user": (lambda v: isinstance(v, str), "a string"),
}


def check_openai_fields(data: dict[str, Any]) -> None:
    """Raise a 400 naming the first OpenAI field whose value has the wrong type or range (null is allowed)."""
    for name, (valid, wanted) in OPENAI_FIELDS.items():
        value = data.get(name)
        if value is not None and not valid(value):
            shown = json.dumps(value)[:60]
            raise HTTPError(400, f"invalid field '{name}': must be {wanted}, got {shown}", code="invalid_field",
                            param=name)
