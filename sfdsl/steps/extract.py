"""`extract MODE from EXPR [after /marker/] [with (...)]`: read a typed answer out of generated text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.regexes import HINT as REGEX_HINT
from sfdsl.regexes import regex_problem
from sfdsl.step_kind import ParamSpec, StepKind
from sfdsl.types import ANY, BOOL, FLOAT, INT, STR, Type, elem, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Extract(ast.StepNode):
    kind: Literal["extract"] = "extract"
    mode: str
    source: ast.Expr
    pattern: ast.RegexLit | None = None
    choices: ast.ListExpr | None = None
    after: ast.RegexLit | None = None
    args: list[ast.Arg] = Field(default_factory=list)


PARAMS = {
    "case": ParamSpec(STR, "letter case of text answers", default="lower", one_of=("lower", "upper", "keep")),
    "strip": ParamSpec(BOOL, "strip whitespace and punctuation", default=True),
    "last": ParamSpec(BOOL, "take the last match rather than the first", default=True),
}
#: Each mode and the type of the value it extracts.
RESULTS: dict[str, Type] = {"number": FLOAT, "int": INT, "text": STR, "list": list_of(STR), "regex": STR,
                            "choice": STR, "bool": BOOL}


def build(b: Any, c: list[Any], meta: Any) -> Extract:
    (mode, extra), source, after, args = c
    return Extract(
        span=b.span(meta),
        mode=mode,
        source=source,
        pattern=extra if isinstance(extra, ast.RegexLit) else None,
        choices=extra if isinstance(extra, ast.ListExpr) else None,
        after=b.regex_lit(after) if after is not None else None,
        args=args or [],
    )


def check(ck: StepChecks, node: Extract, scope: Scope) -> Type:
    ck.known_mode(KIND, node, code="SF211", what="extract mode")
    if node.choices is not None:
        ck.infer(node.choices, scope)
    source = ck.infer(node.source, scope)
    base = elem(source) if source.is_list else source
    if not base.textual:
        ck.error("SF306", f"extract reads text, but its source is {source}", node.source)
    ck.check_args(node.args, PARAMS, "extract", node, scope)
    for regex in (node.pattern, node.after):
        problem = regex_problem(regex.pattern, regex.flags) if regex is not None else None
        if regex is not None and problem is not None:
            ck.error("SF314", f"extract regex cannot run in linear time (RE2): {problem}", regex, REGEX_HINT)
    result = RESULTS.get(node.mode, ANY)
    return list_of(result) if source.is_list else result


def bound(cm: CostModel, node: Extract, env: Env) -> tuple[Bound, Abstract]:
    return Bound(), Abstract(length=cm.length(node.source, env))


KIND = StepKind(
    name="extract",
    doc="read a typed answer out of text (a list of texts gives a list); `none` when nothing matches",
    syntax="extract MODE from EXPR [after /marker/] [with (params)]",
    node=Extract,
    rule="extract",
    build=build,
    modes=dict.fromkeys(RESULTS, PARAMS),
    check=check,
    bound=bound,
    label=lambda node: node.mode,
    runtime="sfdsl.runtime.step_runs:run_extract",
    rules={
        "extract_kind": lambda b, c, meta: (str(c[0]), None),
        "extract_regex": lambda b, c, meta: ("regex", b.regex_lit(c[0])),
        "extract_choice": lambda b, c, meta: ("choice", c[0]),
    },
)
