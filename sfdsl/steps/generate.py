"""`generate PROMPT (params) [using M]`: sample text from a model, n samples decoded as one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.constant_checks import gbnf_grammar, regex_constraint
from sfdsl.step_kind import LOGPROBS, SAMPLING, ParamSpec, StepKind
from sfdsl.types import INT, REGEX, STR, TEXT, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Generate(ast.StepNode):
    kind: Literal["generate"] = "generate"
    prompt: str
    args: list[ast.Arg] = Field(default_factory=list)
    using: str | None = None


PARAMS = {
    **SAMPLING,
    "n": ParamSpec(INT, "number of samples, decoded as one batch (given: the value is a list)", default=1),
    "choices": ParamSpec(list_of(STR), "constrain the output to one of these strings"),
    "regex": ParamSpec(REGEX, "constrain the output to match this regex", check=regex_constraint),
    "grammar": ParamSpec(STR, "constrain the output with a GBNF grammar", check=gbnf_grammar),
    "logprobs": LOGPROBS,
}


def build(b: Any, c: list[Any], meta: Any) -> Generate:
    return Generate(span=b.span(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])


def check(ck: StepChecks, node: Generate, scope: Scope) -> Type:
    ck.use_prompt(node.prompt, node, scope)
    ck.use_model(node.using, node)
    args = ck.check_args(node.args, PARAMS, "generate", node, scope)
    return list_of(TEXT) if "n" in args else TEXT


def bound(cm: CostModel, node: Generate, env: Env) -> tuple[Bound, Abstract]:
    n = cm.count(node, PARAMS, "n", env, "generate")
    has_n = any(a.name == "n" for a in node.args)
    return Bound(1, n * cm.max_tokens(node, env), n), Abstract(length=n if has_n else None)


KIND = StepKind(
    name="generate",
    doc="sample text from a model; `n:` samples are decoded as one batch",
    syntax="generate PROMPT (params) [using M]",
    node=Generate,
    rule="generate",
    build=build,
    modes={"": PARAMS},
    mode_field="",
    check=check,
    bound=bound,
    label=lambda node: node.prompt,
    runtime="sfdsl.runtime.model_steps:run_generate",
)
