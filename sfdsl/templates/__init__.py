"""Prompt templates: `{{ variables }}` rendered in jinja2's immutable sandbox.

Values reach templates as plain data (strings, numbers, lists, dict records), so a
template can neither reach Python internals nor run code, and input values are
never re-parsed as templates: `{{ 7*7 }}` inside an input stays literal text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError

from sfdsl.templates.guard import (
    DEFAULT_LIMITS,
    GUARD_KEY,
    GuardedEnvironment,
    RenderGuard,
    RenderLimitExceeded,
    TemplateLimits,
)
from sfdsl.values import RECORD_TYPES, NoAnswer, primary, wire_fields

JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})
#: Deepest nesting of block tags (`{% for %}`, `{% if %}`...) a template may have; checked on the token stream
#: before jinja parses it, since parsing and compiling deeper nesting costs seconds before Python refuses it.
MAX_BLOCK_NESTING = 20
_OPENERS = frozenset({"for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans"})


class TemplateError(Exception):
    """A template failed to parse or render; ``line`` is 1-based within the template."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Record(dict):  # type: ignore[type-arg]
    """A record exposed to templates: fields by name, renders as its primary value."""

    def __init__(self, fields: dict[str, Any], shown: str) -> None:
        super().__init__(fields)
        self._shown = shown

    def __str__(self) -> str:
        return self._shown


@lru_cache(maxsize=1)
def environment() -> GuardedEnvironment:
    """The one sandboxed environment all prompts render in (see ``sfdsl.templates.guard``)."""
    return GuardedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def variables(text: str) -> set[str]:
    """Names a template reads, e.g. ``{'question'}`` for ``"Q: {{ question }}"``.

    Nothing in the template is evaluated: the guarded environment folds no
    user expression, so ``{{ 7 ** 99999999 }}`` is checked in microseconds.
    Each text is parsed once; later calls reuse the answer.

    Raises:
        TemplateError: when the template does not parse.
    """
    found, problem = _variables(text)
    if problem is not None:
        raise TemplateError(problem[0], line=problem[1])
    return set(found)


@lru_cache(maxsize=4096)
def _variables(text: str) -> tuple[frozenset[str], tuple[str, int | None] | None]:
    """``variables``' answer, or the message and line of its TemplateError (an exception is not cached)."""
    try:
        _check_nesting(text)
        parsed = environment().parse(text)
        found = frozenset(meta.find_undeclared_variables(parsed)) - JINJA_GLOBALS
        _compile(text)  # what Python itself refuses (e.g. 20 nested blocks) is found now, not at run time
        return found, None
    except TemplateError as exc:
        return frozenset(), (str(exc), exc.line)
    except TemplateSyntaxError as exc:
        return frozenset(), (exc.message or "template syntax error", exc.lineno)
    except (RecursionError, MemoryError, SyntaxError) as exc:
        return frozenset(), (f"template nests too deeply ({type(exc).__name__})", None)
    except ValueError as exc:  # e.g. an integer literal of more than 4300 digits
        return frozenset(), (f"template syntax error: {exc}", None)


def _check_nesting(text: str) -> None:
    """Refuse block tags nested deeper than ``MAX_BLOCK_NESTING``, from jinja's (linear) token stream."""
    if "{%" not in text:
        return
    depth, after_begin, pending_set = 0, False, False
    for line, kind, value in environment().lex(text):
        if kind == "block_begin":
            after_begin = True
            continue
        if kind == "whitespace":
            continue
        if after_begin and kind == "name":
            if value.startswith("end"):
                depth -= 1
            elif value in _OPENERS:
                depth += 1
            pending_set = value == "set"
        elif kind == "assign":
            pending_set = False
        elif kind == "block_end" and pending_set:  # `{% set x %}...{% endset %}` is a block
            depth, pending_set = depth + 1, False
        after_begin = False
        if depth > MAX_BLOCK_NESTING:
            raise TemplateError(f"template blocks nest more than {MAX_BLOCK_NESTING} deep", line=line)


def render(text: str, values: dict[str, Any], *, limits: TemplateLimits = DEFAULT_LIMITS) -> str:
    """Render a template with run-time values converted to plain template data.

    The render streams and stops at the first limit it passes (time, output
    size, loop iterations, call depth, work): see ``TemplateLimits``.

    Raises:
        TemplateError: when the template fails or exceeds a limit.
    """
    guard = RenderGuard(limits)
    try:
        template = _compile(text)
        data = {k: to_template(v) for k, v in values.items()}
        data[GUARD_KEY] = guard
        out: list[str] = []
        size = 0
        for chunk in template.generate(data):
            size += len(chunk)
            if size > limits.max_output_chars:
                raise RenderLimitExceeded(f"template output exceeded {limits.max_output_chars} characters")
            out.append(chunk)
        return "".join(out)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "template syntax error", line=exc.lineno) from None
    except RenderLimitExceeded as exc:
        raise TemplateError(str(exc)) from None
    except (UndefinedError, SecurityError) as exc:
        raise TemplateError(str(exc)) from None
    except RecursionError:
        raise TemplateError("template recursion too deep") from None
    except MemoryError:
        raise TemplateError("template ran out of memory") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateError(f"template failed: {exc}") from None


@lru_cache(maxsize=512)
def _compile(text: str) -> Any:
    try:
        return environment().from_string(text)
    except (RecursionError, MemoryError, SyntaxError) as exc:
        raise TemplateError(f"template nests too deeply ({type(exc).__name__})") from None


def to_template(value: Any) -> Any:
    """Convert a run-time value into data a sandboxed template may read."""
    if isinstance(value, NoAnswer):
        return ""
    if isinstance(value, RECORD_TYPES):
        fields = {name: to_template(getattr(value, name)) for name in value.FIELDS}  # type: ignore[attr-defined]
        return _Record(fields, str(primary(value)) if not hasattr(value, "text") else str(value))
    if isinstance(value, (list, tuple)):
        return [to_template(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_template(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    wire = wire_fields(value) if hasattr(value, "model_dump") else None
    if wire is not None:  # a message, tool spec or tool call: the fields expressions read
        shown = wire.get("text", wire.get("name", ""))
        return _Record({k: to_template(v) for k, v in wire.items()}, str(shown))
    return str(value)
