"""Pulling typed values out of generated text, with normalisation; failures yield NoAnswer."""

from __future__ import annotations

import re
from typing import Any

from sfdsl import regexes
from sfdsl.expressions import scalar
from sfdsl.values import NoAnswer

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
TRUE_WORDS = {"yes", "true", "correct", "right", "y"}
FALSE_WORDS = {"no", "false", "incorrect", "wrong", "n"}


def extract(
    mode: str,
    source: Any,
    *,
    pattern: tuple[str, str] | None = None,
    choices: list[str] | None = None,
    after: tuple[str, str] | None = None,
    case: str = "lower",
    strip: bool = True,
    last: bool = True,
) -> Any:
    """Extract one value from text (or a list of values from a list of texts).

    Example:
        >>> extract("number", "so 3 + 4 ... The answer is 7.", after=("The answer is", ""))
        7
    """
    if isinstance(source, list):
        return [extract(mode, s, pattern=pattern, choices=choices, after=after, case=case, strip=strip, last=last)
                for s in source]
    if isinstance(source, NoAnswer):
        return source
    text = str(scalar(source))
    if after is not None:
        found = list(regexes.finditer(after[0], text, after[1]))
        if not found:
            return NoAnswer(f"no /{after[0]}/ in the text")
        text = text[(found[-1] if last else found[0]).end():]
        last = False  # the value follows the marker
    handler = _MODES[mode]
    return handler(text, pattern=pattern, choices=choices, case=case, strip=strip, last=last)


def _number(text: str, **kw: Any) -> Any:
    found = NUMBER.findall(text)
    if not found:
        return NoAnswer("no number in the text")
    raw = (found[-1] if kw["last"] else found[0]).replace(",", "")
    value = float(raw)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _int(text: str, **kw: Any) -> Any:
    value = _number(text, **kw)
    if isinstance(value, NoAnswer):
        return value
    return round(value)


def _normalise(text: str, *, case: str, strip: bool) -> str:
    if strip:
        text = text.strip().strip(".,;:!?\"'`*()[] \n\t")
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    return text


def _text(text: str, **kw: Any) -> Any:
    value = _normalise(text, case=kw["case"] if kw["case"] != "lower" else "keep", strip=kw["strip"])
    return value if value else NoAnswer("empty text")


def _list(text: str, **kw: Any) -> Any:
    parts = re.split(r"[\n,;]+", text)
    items: list[str] = []
    for part in parts:
        part = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", part)
        item = _normalise(part, case="keep", strip=kw["strip"])
        if item and item.lower() not in (i.lower() for i in items):
            items.append(item)
    return items


def _regex(text: str, **kw: Any) -> Any:
    pattern, flags = kw["pattern"]
    found = list(regexes.finditer(pattern, text, flags))
    if not found:
        return NoAnswer(f"no match for /{pattern}/")
    match = found[-1] if kw["last"] else found[0]
    value = match.group(1) if match.groups() else match.group(0)
    return _normalise(value or "", case=kw["case"], strip=kw["strip"]) or NoAnswer("empty match")


def _choice(text: str, **kw: Any) -> Any:
    choices: list[str] = kw["choices"] or []
    haystack = _normalise(text, case="lower", strip=False)
    best: tuple[int, str] | None = None
    for choice in choices:
        needle = choice.strip().lower()
        if not needle:
            continue
        for m in re.finditer(r"(?<![A-Za-z0-9])" + re.escape(needle) + r"(?![A-Za-z0-9])", haystack):
            position = m.start() if not kw["last"] else -m.start()
            if best is None or position < best[0]:
                best = (position, choice)
    if best is None:
        return NoAnswer(f"none of {choices} in the text")
    return best[1] if kw["case"] == "keep" else _normalise(best[1], case=kw["case"], strip=kw["strip"])


def _bool(text: str, **kw: Any) -> Any:
    words = re.findall(r"[A-Za-z]+", text.lower())
    if not kw["last"]:
        words = list(reversed(words))
    for word in reversed(words):
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return NoAnswer("no yes/no in the text")


_MODES = {"number": _number, "int": _int, "text": _text, "list": _list, "regex": _regex, "choice": _choice,
          "bool": _bool}
