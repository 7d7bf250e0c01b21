"""Static types of .sf values and the type inference of expressions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sfdsl import ast
from sfdsl.diagnostics import with_suggestion
from sfdsl.expressions import BUILTINS
from sfdsl.regexes import HINT, regex_problem
from sfdsl.values import VECTORISED_FIELDS


@dataclass(frozen=True)
class Type:
    """A static type: a scalar, a ``list[...]`` of another type, or a record with named fields.

    Attributes:
        name: the type's name as recipes write it (``list`` for lists).
        item: the element type of a list.
        fields: a record's fields and their types, in declaration order.
        textual: values may stand where text is read (extract, comparisons).
        numeric: values may be used in arithmetic.
    """

    name: str
    item: Type | None = None
    fields: tuple[tuple[str, Type], ...] = ()
    textual: bool = False
    numeric: bool = False

    def __str__(self) -> str:
        return f"list[{self.item}]" if self.name == "list" else self.name

    @property
    def is_list(self) -> bool:
        return self.item is not None

    def field(self, name: str) -> Type | None:
        """The type of a record field, or None when the type has no such field."""
        return dict(self.fields).get(name)

    def field_names(self) -> list[str]:
        return [name for name, _ in self.fields]


def record(type_name: str, /, *, textual: bool = False, numeric: bool = False, **fields: Type) -> Type:
    """A record type, e.g. ``record("vote", answer=ANY, share=FLOAT)``."""
    return Type(type_name, fields=tuple(fields.items()), textual=textual, numeric=numeric)


ANY = Type("any", textual=True, numeric=True)
STR = Type("str", textual=True)
INT = Type("int", numeric=True)
FLOAT = Type("float", numeric=True)
BOOL = Type("bool", numeric=True)
DICT = Type("dict")
REGEX = Type("regex")
PROMPT = Type("prompt")


def list_of(t: Type) -> Type:
    return Type("list", item=t)


TEXT = record("text", textual=True, text=STR, tokens=INT, prompt_tokens=INT, logprob=FLOAT, finish=STR, index=INT,
              rounds=INT)
SCORE = record("score", numeric=True, score=FLOAT, label=STR, logprob=FLOAT, text=STR, probs=list_of(FLOAT))
VOTE = record("vote", textual=True, numeric=True, answer=ANY, share=FLOAT, share_all=FLOAT, margin=FLOAT, votes=INT,
              total=INT, counts=DICT, stopped_early=BOOL)
REFINED = record("refined", textual=True, numeric=True, value=ANY, score=FLOAT, rounds=INT, history=list_of(DICT),
                 first=ANY, stopped=BOOL)
SEARCH = record("search", textual=True, best=STR, value=FLOAT, path=list_of(STR), nodes=INT, simulations=INT)
RESULT = record("result", textual=True, numeric=True, answer=ANY, score=FLOAT, abstained=BOOL, reason=STR)
#: One turn of a conversation (sfdsl.agent_values.Message), as recipes read it.
MESSAGE = record("message", textual=True, role=STR, content=STR, text=STR, name=STR, tool_calls=list_of(DICT),
                 tool_call_id=STR)
#: One tool a model may call (sfdsl.agent_values.ToolSpec): its name, description and JSON-Schema parameters.
TOOL = record("tool", name=STR, description=STR, parameters=DICT, function=DICT, type=STR)
#: A chat conversation: a list of messages (an input type).
CONVERSATION = Type("conversation", item=MESSAGE)
#: The tools a model may call: a list of tool specs (an input type).
TOOLS = Type("tools", item=TOOL)
#: A JSON Schema (an input type, and the type of a `schema:` parameter).
SCHEMA = Type("schema")
#: The action a model chose (`act`): a tool call, or a text answer.
ACTION = record("action", kind=STR, id=STR, name=STR, arguments=DICT, text=STR)

#: Types a recipe input may be declared with.
PARAM_TYPES: dict[str, Type] = {str(t): t for t in (STR, INT, FLOAT, BOOL, list_of(STR), list_of(INT),
                                                     list_of(FLOAT), ANY, CONVERSATION, TOOLS, SCHEMA)}
#: Every type with a name, for reading declared types (parameter specs, outputs).
NAMED_TYPES: dict[str, Type] = {str(t): t for t in (STR, INT, FLOAT, BOOL, DICT, REGEX, PROMPT, ANY, TEXT, SCORE,
                                                     VOTE, REFINED, SEARCH, RESULT, MESSAGE, TOOL, CONVERSATION,
                                                     TOOLS, SCHEMA, ACTION)}
#: Records a value of which may stand where a str is expected (its primary value).
_AS_STR = ("text", "vote", "refined", "result", "search")
#: Types a value of which may stand where a float is expected.
_AS_FLOAT = ("int", "score", "bool")


def parse_type(text: str) -> Type | None:
    """The type a name like ``list[str]`` denotes, or None when there is none.

    >>> parse_type("list[int]")
    Type(name='list', item=Type(name='int', item=None, fields=(), textual=False, numeric=True), fields=(), \
textual=False, numeric=False)
    """
    text = text.strip()
    if text.startswith("list[") and text.endswith("]"):
        inner = parse_type(text[5:-1])
        return list_of(inner) if inner is not None else None
    return NAMED_TYPES.get(text)


def elem(t: Type) -> Type:
    """The element type of a list; ANY for anything else."""
    return t.item if t.item is not None else ANY


def assignable(src: Type, dst: Type) -> bool:
    """Whether a value of type ``src`` may be used where ``dst`` is expected."""
    if src == dst or ANY in (src, dst):
        return True
    if src.item is not None and dst.item is not None:
        return assignable(src.item, dst.item)
    if dst == FLOAT:
        return src.name in _AS_FLOAT
    if dst == STR:
        return src.name in _AS_STR
    if dst == SCHEMA:
        return src == DICT  # a literal schema
    return dst == list_of(STR) and src == STR  # a single stop string


def join(a: Type, b: Type) -> Type:
    """The least type covering both (for list literals and if/else branches)."""
    if assignable(a, b):
        return b
    if assignable(b, a):
        return a
    return ANY


Report = Callable[[str, str, Any, str | None], None]


class ExprTyper:
    """Infers expression types, reporting problems through ``report(code, message, node, hint)``."""

    def __init__(self, resolve: Callable[[ast.Name], Type | None], report: Report) -> None:
        self._resolve = resolve
        self._report = report
        self._rules: dict[str, Callable[[Any], Type]] = {
            "name": self._name, "const": self._const, "regex": lambda node: REGEX, "list": self._list,
            "dict": self._dict, "attr": self._attr, "index": self._index, "func": self._func,
            "unary": self._unary, "binop": self._binop,
        }

    def infer(self, node: Any) -> Type:
        return self._rules[node.kind](node)


    def _name(self, node: ast.Name) -> Type:
        t = self._resolve(node)
        return t if t is not None else ANY

    def _const(self, node: ast.Const) -> Type:
        v = node.value
        if isinstance(v, bool):
            return BOOL
        if isinstance(v, int):
            return INT
        if isinstance(v, float):
            return FLOAT
        if v is None:
            return ANY
        return STR

    def _list(self, node: ast.ListExpr) -> Type:
        if not node.items:
            return list_of(ANY)
        t = self.infer(node.items[0])
        for item in node.items[1:]:
            t = join(t, self.infer(item))
        return list_of(t)

    def _dict(self, node: ast.DictExpr) -> Type:
        for v in node.values:
            self.infer(v)
        return DICT

    def _attr(self, node: ast.Attr) -> Type:
        base = self.infer(node.value)
        if base in (ANY, DICT, SCHEMA):
            return ANY
        if base.item is not None:
            inner = base.item
            if inner in (ANY, DICT):
                return list_of(ANY)  # e.g. refined.history.score: one field of each record
            field = inner.field(node.attr)
            if field is not None and node.attr in VECTORISED_FIELDS:
                return list_of(field)
        field = base.field(node.attr)
        if field is not None:
            return field
        if base == RESULT:
            return ANY  # declared outputs of the called recipe
        message = with_suggestion(f"a value of type {base} has no field '{node.attr}'", node.attr,
                                  base.field_names())
        self._report("SF302", message, node, None)
        return ANY

    def _index(self, node: ast.Index) -> Type:
        base = self.infer(node.value)
        key = self.infer(node.index)
        if base.item is not None:
            if not assignable(key, INT):
                self._report("SF301", f"list index must be an int, not {key}", node.index, None)
            return base.item
        if base in (STR, TEXT):
            return STR
        return ANY

    def _func(self, node: ast.Func) -> Type:
        spec = BUILTINS.get(node.func)
        for a in node.args:
            self.infer(a)
        if spec is None:
            message = with_suggestion(f"unknown function '{node.func}'", node.func, BUILTINS)
            self._report("SF203", message, node, "built-ins: " + ", ".join(sorted(BUILTINS)))
            return ANY
        _, low, high, result = spec
        if not low <= len(node.args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            self._report("SF304", f"{node.func}() takes {want} arguments, got {len(node.args)}", node, None)
        return parse_type(result) or ANY

    def _unary(self, node: ast.Unary) -> Type:
        t = self.infer(node.operand)
        if node.op == "not":
            return BOOL
        if not t.numeric and not t.is_list:
            self._report("SF301", f"cannot negate a value of type {t}", node, None)
        return INT if t == INT else FLOAT

    def _binop(self, node: ast.BinOp) -> Type:
        left, right = self.infer(node.left), self.infer(node.right)
        op = node.op
        if op in ("and", "or", "==", "!=", "in"):
            return BOOL
        if op == "matches":
            if right != REGEX:
                self._report("SF303", "'matches' needs a /regex/ on its right", node.right, None)
            elif isinstance(node.right, ast.RegexLit):
                problem = regex_problem(node.right.pattern, node.right.flags)
                if problem is not None:
                    self._report("SF314", f"'matches' regex cannot run in linear time (RE2): {problem}", node.right,
                                 HINT)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            for side, t in ((node.left, left), (node.right, right)):
                if not t.numeric and not t.textual:
                    self._report("SF301", f"cannot compare a value of type {t}", side, None)
            return BOOL
        if op == "+" and (left in (STR, TEXT) or right in (STR, TEXT)):
            return STR
        for side, t in ((node.left, left), (node.right, right)):
            if not t.numeric:
                hint = "extract a number first: `x = extract number from ...`" if t in (TEXT, STR) else None
                self._report("SF301", f"cannot apply '{op}' to a value of type {t}", side, hint)
                return ANY
        if left == INT and right == INT and op != "/":
            return INT
        return FLOAT
