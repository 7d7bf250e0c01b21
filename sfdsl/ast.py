"""The typed AST of .sf programs: pydantic nodes, each carrying its source span.

Class names mirror the grammar's rule names (grammar/sf.lark). Step nodes live with their step kinds in
sfdsl/steps/; statements hold them as ``StepNode``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sfdsl.diagnostics import Span


class Node(BaseModel):
    """Base of every AST node."""

    model_config = ConfigDict(frozen=True)

    span: Span


# ---------------------------------------------------------------- expressions


class Name(Node):
    kind: Literal["name"] = "name"
    id: str


class Const(Node):
    """A number, string, boolean or none literal."""

    kind: Literal["const"] = "const"
    value: Any


class RegexLit(Node):
    kind: Literal["regex"] = "regex"
    pattern: str
    flags: str = ""


class ListExpr(Node):
    kind: Literal["list"] = "list"
    items: list[Expr]


class DictExpr(Node):
    kind: Literal["dict"] = "dict"
    keys: list[str]
    values: list[Expr]


class Attr(Node):
    kind: Literal["attr"] = "attr"
    value: Expr
    attr: str


class Index(Node):
    kind: Literal["index"] = "index"
    value: Expr
    index: Expr


class Func(Node):
    """A call of a built-in function, e.g. ``len(xs)``."""

    kind: Literal["func"] = "func"
    func: str
    args: list[Expr]


class Unary(Node):
    kind: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: Expr


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: str
    left: Expr
    right: Expr


Expr = Annotated[
    Name | Const | RegexLit | ListExpr | DictExpr | Attr | Index | Func | Unary | BinOp,
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------- steps


class Arg(Node):
    name: str
    value: Expr


class StepNode(Node):
    """Base of every step node; each step kind declares its node in its own module (sfdsl/steps/)."""

    kind: str


class PromptStep(StepNode):
    """A step that sends one named prompt to a model: ``KIND PROMPT (args) [using M]``."""

    prompt: str
    args: list[Arg] = Field(default_factory=list)
    using: str | None = None

    @property
    def returns_list(self) -> bool:
        """Whether the step's value is a list of its samples: exactly when ``n:`` is given (even ``n: 1``)."""
        return any(a.name == "n" for a in self.args)

    def value_of(self, samples: list[Any]) -> Any:
        """The step's value from its samples: the list given ``n:``, else the only sample."""
        return samples if self.returns_list else samples[0]


Rhs = StepNode | Expr


def is_step(node: Any) -> bool:
    """Whether a right-hand side is a step (as opposed to a plain expression)."""
    return isinstance(node, StepNode)


# ---------------------------------------------------------------- statements


class Turn(Node):
    """One turn of a chat prompt: ``role: "template"``, or ``conversation: NAME`` splicing a conversation."""

    role: str
    text: str = ""
    splice: Expr | None = None


class ModelDecl(Node):
    stmt: Literal["model"] = "model"
    name: str
    backend: str
    args: list[Arg] = []


class PromptDecl(Node):
    stmt: Literal["prompt"] = "prompt"
    name: str
    text: str | None = None
    turns: list[Turn] | None = None
    body_span: Span


class Assign(Node):
    stmt: Literal["assign"] = "assign"
    target: str
    value: Rhs


class If(Node):
    stmt: Literal["if"] = "if"
    cond: Expr
    then: Block
    orelse: Block | None = None


class Field_(Node):
    name: str
    value: Expr


class Return(Node):
    stmt: Literal["return"] = "return"
    fields: list[Field_] | None = None
    value: Rhs | None = None


class Abstain(Node):
    stmt: Literal["abstain"] = "abstain"
    fields: list[Field_]


class Stop(Node):
    stmt: Literal["stop"] = "stop"
    cond: Expr


class Next(Node):
    stmt: Literal["next"] = "next"
    value: Rhs


class ScoreStmt(Node):
    stmt: Literal["score"] = "score"
    value: Expr


class Yield(Node):
    stmt: Literal["yield"] = "yield"
    value: Rhs


Stmt = Annotated[
    ModelDecl | PromptDecl | Assign | If | Return | Abstain | Stop | Next | ScoreStmt | Yield,
    Field(discriminator="stmt"),
]


class Block(Node):
    stmts: list[Stmt]


# ---------------------------------------------------------------- top level


class TypeRef(Node):
    name: str
    arg: TypeRef | None = None

    def __str__(self) -> str:
        return f"{self.name}[{self.arg}]" if self.arg else self.name


class Param(Node):
    name: str
    type: TypeRef
    default: Expr | None = None
    doc: str = ""  # its `#:` doc-comment (at the end of its line, else the `#:` lines right above it)


class OutField(Node):
    name: str
    type: TypeRef | None = None


class RecipeDecl(Node):
    """A recipe as declared in a .sf file (the AST node; ``sfdsl.Recipe`` is the runnable handle built from it)."""

    name: str
    params: list[Param]
    returns: list[OutField] = []
    body: Block
    doc: str = ""  # the `#` comment above the recipe, else the file's header comment


class Import(Node):
    path: str
    alias: str | None = None


class Module(Node):
    """One parsed .sf file."""

    file: str
    imports: list[Import]
    recipes: list[RecipeDecl]


for _model in list(globals().values()):
    if isinstance(_model, type) and issubclass(_model, BaseModel) and _model is not BaseModel:
        _model.model_rebuild()
