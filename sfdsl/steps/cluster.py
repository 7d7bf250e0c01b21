"""`cluster EXPR by exact|similarity|llm (params) [using M]`: group answers that mean the same thing.

The value is a `clusters` record: the groups (lists of indices), their sizes (largest first), the first member
of the largest group, its share of all answers, the number of groups and the entropy of the group frequencies
in nats, the basis of semantic entropy (Kuhn et al. 2023; Farquhar et al., Nature 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from sfdsl import ast
from sfdsl.bounds import Abstract, Bound
from sfdsl.step_kind import ParamSpec, StepKind
from sfdsl.types import ANY, FLOAT, INT, PROMPT, STR, Type, list_of, record
from sfdsl.values import Record

if TYPE_CHECKING:
    from sfdsl.check_steps import StepChecks
    from sfdsl.cost import CostModel, Env
    from sfdsl.scope import Scope


class Cluster(ast.StepNode):
    kind: Literal["cluster"] = "cluster"
    source: ast.Expr
    mode: str
    args: list[ast.Arg] = Field(default_factory=list)
    using: str | None = None


@dataclass(frozen=True)
class Clusters(Record):
    """Answers grouped by meaning: index groups (largest first, ties by first member) and their statistics."""

    groups: list[list[int]]
    sizes: list[int]
    largest: Any
    share: float
    count: int
    entropy: float
    FIELDS: ClassVar[tuple[str, ...]] = ("groups", "sizes", "largest", "share", "count", "entropy")

    def primary(self) -> Any:
        return self.largest

    def as_result(self) -> dict[str, Any]:
        return {"answer": self.largest, "score": self.share}

    def __str__(self) -> str:
        return str(self.largest)


CLUSTERS = record("clusters", textual=True, groups=list_of(list_of(INT)), sizes=list_of(INT), largest=ANY,
                  share=FLOAT, count=INT, entropy=FLOAT)

#: Template variables the step supplies to its `prompt:`: the two answers compared.
SUPPLIED = ("a", "b")
MODES = {
    "exact": {},
    "similarity": {
        "threshold": ParamSpec(FLOAT, "difflib ratio at or above which an answer joins a cluster", default=0.8,
                               low=0, high=1),
    },
    "llm": {
        "prompt": ParamSpec(PROMPT, "asks whether answer {{ a }} implies answer {{ b }} (default: a built-in one)"),
        "options": ParamSpec(list_of(STR), "the continuations compared; the first one means yes",
                             default=(" (A)", " (B)")),
        "threshold": ParamSpec(FLOAT, "probability of yes at or above which one answer implies the other",
                               default=0.5, low=0, high=1),
    },
}


def build(b: Any, c: list[Any], meta: Any) -> Cluster:
    return Cluster(span=b.span(meta), source=c[0], mode=str(c[1]), args=c[2] or [], using=c[3])


def check(ck: StepChecks, node: Cluster, scope: Scope) -> Type:
    source = ck.infer(node.source, scope)
    if not source.is_list and source != ANY:
        ck.error("SF306", f"cluster needs a list of answers, but got {source}", node.source,
                 "cluster `generate ... (n: N)` samples, or the answers extracted from them")
    spec = ck.known_mode(KIND, node, code="SF215", what="cluster mode")
    if spec is not None:
        args = ck.check_args(node.args, spec, f"cluster by {node.mode}", node, scope)
        if "prompt" in args and isinstance(args["prompt"].value, ast.Name):
            ck.use_prompt(args["prompt"].value.id, node, scope, extra=set(SUPPLIED))
    ck.use_model(node.using, node)
    return CLUSTERS


def comparisons(n: int) -> int:
    """Worst-case representative comparisons of n answers: every answer starts its own cluster."""
    return n * (n - 1) // 2


def bound(cm: CostModel, node: Cluster, env: Env) -> tuple[Bound, Abstract]:
    if node.mode != "llm":
        return Bound(), Abstract()
    n = cm.length(node.source, env)
    if n is None:
        n = cm.unbounded(node, "cluster by llm", "cluster the samples of `generate ... (n: N)`, or a list literal")
    options = len(cm.param(node, MODES["llm"], "options", env, "cluster by llm") or ())
    # Each comparison asks both directions at once; an answer is compared with every representative at once.
    return Bound(2 * comparisons(n), 0, 2 * max(n - 1, 0) * options), Abstract()


KIND = StepKind(
    name="cluster",
    doc="group answers that mean the same: exact (normalised equality), similarity (difflib ratio), llm "
        "(bidirectional implication judged by the model)",
    syntax="cluster EXPR by MODE (params) [using M]",
    node=Cluster,
    rule="cluster",
    build=build,
    modes=MODES,
    check=check,
    bound=bound,
    label=lambda node: f"by {node.mode}",
    runtime="sfdsl.runtime.clustering:run_cluster",
    supplies=SUPPLIED,
)
