"""Command-line values: argparse types that turn a bad flag value into a usage error (exit 2) naming the flag.

argparse names the flag itself ("argument --seed: ...") when a type raises ``ArgumentTypeError``; these types
raise nothing else, whatever the text (NaN, inf, a 100,000-digit number). One rule for every timeout flag
(``run --timeout``, ``eval --item-timeout``, ``serve --timeout``): seconds, finite, above 0, at most
``MAX_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sfdsl.errors import InputError

#: Longest timeout any flag takes, in seconds (about 11.6 days).
MAX_TIMEOUT_S = 1_000_000.0
#: Seeds are llama.cpp's: unsigned 32-bit.
MAX_SEED = 2**32 - 1
#: Longest number a flag reads, in characters (far above any real value; Python refuses 4,300 digits).
MAX_NUMBER_CHARS = 64
#: Largest --inputs-json file, how deeply its values may nest, and the most digits of one of its integers.
MAX_INPUTS_BYTES = 16 << 20
MAX_INPUTS_DEPTH = 64
MAX_INPUT_INT_DIGITS = 100

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # unrolled: linear even on an unclosed string
_BRACKETS = re.compile(rb"[\[\]{}]")


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within ``[minimum, maximum]``."""

    def parse(text: str) -> int:
        value = _parse_int(text)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {_range(minimum, maximum)}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def number(minimum: float = 0.0, maximum: float = math.inf, *, above: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number above ``minimum`` (or at least it, with ``above=False``), at most
    ``maximum``; NaN and infinities are refused."""

    def parse(text: str) -> float:
        if len(text) > MAX_NUMBER_CHARS:
            raise argparse.ArgumentTypeError(f"not a number: {text[:20]}... ({len(text)} characters)")
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        low = value > minimum if above else value >= minimum
        if not low or value > maximum:
            bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
            upper = f" and at most {maximum:g}" if math.isfinite(maximum) else ""
            raise argparse.ArgumentTypeError(f"must be {bound}{upper}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


#: The one rule of timeout flags.
seconds = number(0.0, MAX_TIMEOUT_S)
#: A run seed.
seed = integer(0, MAX_SEED)
#: A TCP port (0 picks a free one).
port = integer(0, 65_535)


def output_file(text: str) -> str:
    """An argparse type: a file that can be appended to (opened once now, so it exists afterwards)."""
    path = Path(text)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a directory")
        with path.open("a", encoding="utf-8"):
            pass
    except (OSError, ValueError) as exc:  # no such directory, permission denied, a name too long, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise argparse.ArgumentTypeError(f"cannot write {text[:80]}: {reason}") from None
    return text


def positive(kind: type[int] | type[float], *, zero: bool = False, maximum: float | None = None) -> Any:
    """An argparse type: a number above zero (or at least zero), finite, of ``kind``."""
    if kind is int:
        top = None if maximum is None else int(maximum)
        return integer(0 if zero else 1, top)
    return number(0.0, math.inf if maximum is None else maximum, above=not zero)


def load_inputs_json(path: str, flag: str = "--inputs-json") -> Any:
    """The JSON value of an inputs file, refused in one line (InputError, exit 2) when it is not usable.

    Refused: a missing file, one over ``MAX_INPUTS_BYTES``, bad JSON, values nested deeper than
    ``MAX_INPUTS_DEPTH``, integers of more than ``MAX_INPUT_INT_DIGITS`` digits, NaN or infinities.

    Raises:
        InputError: naming ``flag`` and the file.
    """
    file = Path(path)
    where = f"{flag} {file}"
    try:
        with file.open("rb") as fh:
            data = fh.read(MAX_INPUTS_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUTS_BYTES:
        raise InputError(f"{where}: larger than {MAX_INPUTS_BYTES} bytes")
    depth = _max_depth(data)
    if depth > MAX_INPUTS_DEPTH:
        raise InputError(f"{where}: values nest more than {MAX_INPUTS_DEPTH} deep")
    try:
        return json.loads(data.decode("utf-8"), parse_int=_json_int, parse_constant=_json_constant)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: {exc}") from None


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]}... ({len(text)} characters)")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"a whole number from {minimum} to {maximum}"
    if minimum is not None:
        return f"a whole number of at least {minimum}"
    return f"a whole number of at most {maximum}"


def _max_depth(data: bytes) -> int:
    """How deeply brackets nest in JSON text, outside strings; linear, without parsing."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", data)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _json_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INPUT_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {MAX_INPUT_INT_DIGITS})")
    return int(text)


def _json_constant(text: str) -> float:
    raise ValueError(f"{text} is not a number sfdsl accepts")
