"""`generate PROMPT (params) [using M]`: sample text from a model, n samples decoded as one batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.constant_checks import gbnf_grammar, regex_constraint
from sfdsl.step_kind import LOGPROBS, SAMPLES, ParamSpec, StepKind
from sfdsl.types import REGEX, STR, Type, list_of

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
}


def build(b: Any, c: list[Any], meta: Any) -> Generate:
    return Generate(span=b.span(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])


def check(ck: StepChecks, node: Generate, scope: Scope) -> Type:
    return ck.sampled_text(node, PARAMS, "generate", scope)


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
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: node.prompt,
    runtime="sfdsl.runtime.step_runs:run_generate",
)
