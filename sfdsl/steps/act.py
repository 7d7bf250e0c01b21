"""`act PROMPT (tools: T, params) [using M]`: the model picks an action, a tool call or a text answer.

The value is an ``action`` record (``kind`` "call" or "text", ``id``, ``name``, ``arguments``, ``text``),
or a list of them given ``n:``; the ``n`` samples decode as one batch. A call's arguments are valid
against its tool's JSON Schema: on llama.cpp a grammar built from the schemas constrains the reply;
on OpenAI-compatible servers ``tools``/``tool_choice`` are sent and the returned ``tool_calls`` are
validated. A reply that is not a valid action is asked again (``retries:``), then the step fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.step_kind import SAMPLES, ParamSpec, StepKind
from sfdsl.types import ACTION, INT, STR, TOOLS, Type, list_of

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope

#: The values of `tool_choice:` besides a tool's name.
TOOL_CHOICES = ("auto", "required", "none")


class Act(ast.PromptStep):
    kind: Literal["act"] = "act"


PARAMS = {
    **SAMPLES,
    "tools": ParamSpec(TOOLS, "the tools the model may call (a `tools` input)", required=True),
    "tool_choice": ParamSpec(STR, "'auto': a call or a text answer; 'required': a call; 'none': a text answer; "
                                  "or a tool's name: a call of that tool", default="auto"),
    "retries": ParamSpec(INT, "asks again for a sample whose reply is not a valid action, before the step fails",
                         default=2, low=0),
}


def build(b: Any, c: list[Any], meta: Any) -> Act:
    return Act(span=b.span(meta), prompt=str(c[0]), args=c[1] or [], using=c[2])


def check(ck: StepChecks, node: Act, scope: Scope) -> Type:
    ck.use_prompt(node.prompt, node, scope)
    ck.use_model(node.using, node)
    args = ck.check_args(node.args, PARAMS, "act", node, scope)
    retries = args.get("retries")
    if retries is not None and isinstance(retries.value, ast.Const) and int(retries.value.value or 0) < 0:
        ck.error("SF308", "`retries:` of act must be 0 or more", retries.value)
    return list_of(ACTION) if node.returns_list else ACTION


def bound(cm: CostModel, node: Act, env: Env) -> tuple[Bound, Abstract]:
    """Each retry is one more call for the samples still invalid: at worst every sample, every time."""
    n = cm.count(node, PARAMS, "n", env, "act")
    tries = 1 + cm.count(node, PARAMS, "retries", env, "act", fallback=0)
    return Bound(tries, tries * n * cm.max_tokens(node, env), n), Abstract(length=n if node.returns_list else None)


KIND = StepKind(
    name="act",
    doc="the model picks an action: a call of one of `tools:` with schema-valid arguments, or a text answer",
    syntax="act PROMPT (tools: T, params) [using M]",
    node=Act,
    rule="act",
    build=build,
    params=PARAMS,
    check=check,
    bound=bound,
    label=lambda node: node.prompt,
    runtime="sfdsl.runtime.agent_steps:run_act",
)
