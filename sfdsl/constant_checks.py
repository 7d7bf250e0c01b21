"""Parameter values known at compile time, checked as the runtime will use them.

The checker calls ``constant_problems`` for each step parameter whose type
already fits. By type, it finds what would only fail at run time otherwise:
literal list elements of the wrong type (``weights: ["a", 1]``) and matching
regexes (``done:``, ``pass:``, ``fail:``) that RE2 cannot run (``regex_problem`` also serves `matches` and
`extract`). A
parameter spec may declare its own value check instead (``ParamSpec.check``):
`generate` declares ``regex_constraint`` (a ``regex:`` outside the subset the
engine compiles to a grammar) and ``gbnf_grammar`` (a ``grammar:`` literal
llama.cpp's GBNF parser rejects). ``range_problems`` refuses a constant outside
the spec's range (``n: 0``), which the runtime would refuse too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sfdsl import ast
from sfdsl.constraints import UnsupportedRegex, gbnf_for_regex
from sfdsl.diagnostics import Span
from sfdsl.expressions import ExprError, NotStatic, evaluate
from sfdsl.gbnf import gbnf_problem
from sfdsl.regexes import HINT as REGEX_RE2_HINT
from sfdsl.regexes import regex_problem
from sfdsl.types import BOOL, FLOAT, INT, REGEX, STR, Type, assignable, elem

if TYPE_CHECKING:
    from sfdsl.step_kind import ParamSpec

REGEX_HINT = ("constraints support literals, escapes, '.', classes, groups, '|' and quantifiers; "
              "no look-around, back-references or inner anchors")


class Problem(NamedTuple):
    """One diagnostic to report: code, message, where (a node or a span) and a hint."""

    code: str
    message: str
    where: Any
    hint: str | None = None


ValueCheck = Callable[[str, Any, str], list[Problem]]


def constant_problems(name: str, want: Type, value: Any, where: str, own: ValueCheck | None = None) -> list[Problem]:
    """What is wrong with a parameter's literal value, judged the way the runtime will use it.

    Args:
        own: the parameter's own value check from its spec; it replaces the check by type of a regex.
    """
    problems = _list_elements(name, want, value, where)
    if own is not None:
        problems += own(name, value, where)
    elif want == REGEX:
        problems += _matching_regex(name, value, where)
    return problems


def range_problems(name: str, param: ParamSpec, value: Any, where: str) -> list[Problem]:
    """A constant value outside the parameter's range (``n: 0``, ``top_p: 1.5``): SF320, as the run would refuse it."""
    if param.low is None and param.high is None:
        return []
    try:
        constant = evaluate(value, _no_names)
    except (NotStatic, ExprError):
        return []
    refusal = param.refusal(constant)
    if refusal is None:
        return []
    return [Problem("SF320", f"'{name}: {constant!r}' of {where} is out of range: it {refusal}", value,
                    f"{name}: {param.doc}")]


def _no_names(name: str) -> Any:
    raise NotStatic(name)


def regex_constraint(name: str, value: Any, where: str) -> list[Problem]:
    """A `regex:` output constraint must fall in the subset the engine compiles to a grammar."""
    return _regex_constraint(value, where)


def gbnf_grammar(name: str, value: Any, where: str) -> list[Problem]:
    """A `grammar:` literal must be GBNF that llama.cpp accepts."""
    if isinstance(value, ast.Const) and isinstance(value.value, str):
        return _grammar(value, where)
    return []


def json_schema_literal(name: str, value: Any, where: str) -> list[Problem]:
    """A literal `schema:` must be a JSON Schema that llama.cpp's grammar converter can express."""
    schema = literal_schema(value)
    if schema is None:
        return []
    from sfdsl.json_schema import schema_problem

    problem = schema_problem(schema)
    if problem is None:
        return []
    return [Problem("SF315", f"the schema of {where} cannot constrain generation: {problem}", value,
                    "use a JSON Schema object, e.g. {\"type\": \"object\", \"properties\": {...}}")]


def literal_schema(value: Any) -> Any:
    """The value of a literal schema (a `{...}` with no names in it), or None when it is not one."""
    if not isinstance(value, ast.DictExpr):
        return None
    from sfdsl.expressions import NotStatic, evaluate

    def no_names(name: str) -> Any:
        raise NotStatic(name)

    try:
        return evaluate(value, no_names)
    except (NotStatic, ValueError, TypeError, ArithmeticError):
        return None


def literal_type(value: Any) -> Type | None:
    """The sfdsl type of a Python literal value, or None when it is not a scalar literal."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    return None


def _list_elements(name: str, want: Type, value: Any, where: str) -> list[Problem]:
    if not want.is_list or not isinstance(value, ast.ListExpr):
        return []
    element = elem(want)
    problems = []
    for i, item in enumerate(value.items):
        if not isinstance(item, ast.Const):
            continue
        got = literal_type(item.value)
        if got is not None and not assignable(got, element):
            problems.append(Problem("SF306", f"element {i} of '{name}' for {where} is {got} {item.value!r}, "
                                             f"expected {element}", item, f"'{name}' takes a {want}"))
    return problems


def _regex_constraint(value: Any, where: str) -> list[Problem]:
    if isinstance(value, ast.RegexLit):
        pattern, lead = value.pattern, 1  # the caret skips the opening '/'
    elif isinstance(value, ast.Const) and isinstance(value.value, str):
        pattern, lead = value.value, 1  # ... or the opening quote
    else:
        return []
    try:
        gbnf_for_regex(pattern)
    except UnsupportedRegex as exc:
        reason = str(exc).split(": ", 1)[-1]
        message = f"the regex constraint of {where} cannot be compiled to a grammar: {reason}"
        return [Problem("SF312", message, _caret(value.span, lead + exc.pos), REGEX_HINT)]
    return []


def _matching_regex(name: str, value: Any, where: str) -> list[Problem]:
    """A matching regex (``done:``, ``pass:``...) must be one RE2 runs, as the runtime matches with it."""
    if isinstance(value, ast.RegexLit):
        problem = regex_problem(value.pattern, value.flags)
    elif isinstance(value, ast.Const) and isinstance(value.value, str):
        problem = regex_problem(value.value)
    else:
        return []
    if problem is None:
        return []
    return [Problem("SF314", f"'{name}' of {where} cannot run in linear time (RE2): {problem}", value, REGEX_RE2_HINT)]


def _grammar(value: ast.Const, where: str) -> list[Problem]:
    problem = gbnf_problem(str(value.value))
    if problem is None:
        return []
    text = str(value.value)
    line = text.count("\n", 0, problem.offset) + 1
    column = problem.offset - (text.rfind("\n", 0, problem.offset) + 1) + 1
    message = f"the grammar of {where} is not valid GBNF: {problem.message} (grammar line {line}, column {column})"
    return [Problem("SF313", message, value, "write `root ::= ...` and define every rule it uses; "
                                             "see llama.cpp's grammars/README.md")]


def _caret(span: Span, offset: int) -> Span:
    """A one-character span ``offset`` characters into a single-line literal (the whole literal otherwise)."""
    if span.end_line != span.line or span.column + offset >= span.end_column:
        return span
    column = span.column + offset
    return Span(file=span.file, line=span.line, column=column, end_line=span.line, end_column=column + 1)
