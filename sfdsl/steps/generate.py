"""`generate PROMPT (params) [using M]`: sample text from a model, n samples decoded as one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.constant_checks import gbnf_grammar, json_schema_literal, literal_schema, regex_constraint
from sfdsl.step_kind import LOGPROBS, SAMPLES, ParamSpec, StepKind
from sfdsl.types import DICT, INT, REGEX, SCHEMA, STR, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Generate(ast.PromptStep):
    kind: Literal["generate"] = "generate"


PARAMS = {
    **SAMPLES,
    "choices": ParamSpec(list_of(STR), "constrain the output to one of these strings"),
    "regex": ParamSpec(REGEX, "constrain the output to match this regex", check=regex_constraint),
    "grammar": ParamSpec(STR, "constrain the output with a GBNF grammar", check=gbnf_grammar),
    "logprobs": LOGPROBS,
    "schema": ParamSpec(SCHEMA, "constrain the output to JSON valid for this JSON Schema; the value is the JSON "
                                "value (a record with the schema's properties, when the schema is a literal)",
                        check=json_schema_literal),
    "retries": ParamSpec(INT, "with `schema:`, asks again for a sample whose reply is not valid, before the "
                              "step fails", default=2, low=0),
}
#: Constraints that exclude each other.
CONSTRAINTS = ("choices", "regex", "grammar", "schema")


def build(b: Any, c: list[Any], meta: Any) -> Generate:
    return Generate(span=b.span(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])


def check(ck: StepChecks, node: Generate, scope: Scope) -> Type:
    text = ck.sampled_text(node, PARAMS, "generate", scope)
    given = {a.name: a for a in node.args}
    constraints = [name for name in CONSTRAINTS if name in given]
    if len(constraints) > 1:
        ck.error("SF317", f"generate takes one output constraint, not {' and '.join(constraints)}",
                 given[constraints[1]])
    if "retries" in given and "schema" not in given:
        ck.error("SF317", "`retries:` of generate applies only with `schema:`", given["retries"])
    if "schema" not in given:
        return text
    from sfdsl.json_schema import schema_type

    schema = literal_schema(given["schema"].value)
    value = schema_type(schema) if schema is not None else DICT
    return list_of(value) if node.returns_list else value


def bound(cm: CostModel, node: Generate, env: Env) -> tuple[Bound, Abstract]:
    n = cm.count(node, PARAMS, "n", env, "generate")
    tries = 1 + (cm.count(node, PARAMS, "retries", env, "generate", fallback=0)
                 if any(a.name == "schema" for a in node.args) else 0)
    return Bound(tries, tries * n * cm.max_tokens(node, env), n), Abstract(length=n if node.returns_list else None)


KIND = StepKind(
    name="generate",
    doc="sample text from a model; `n:` samples are decoded as one batch",
    syntax="generate PROMPT (params) [using M]",
    node=Generate,
    rule="generate",
    build=build,
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: node.prompt,
    runtime="sfdsl.runtime.step_runs:run_generate",
)
