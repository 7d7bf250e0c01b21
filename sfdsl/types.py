"""Static types of .sf values and the type inference of expressions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sfdsl import ast
from sfdsl.diagnostics import with_suggestion
from sfdsl.expressions import BUILTINS

ANY = "any"
PARAM_TYPES = ("str", "int", "float", "bool", "list[str]", "list[int]", "list[float]", "any")

#: Fields each record type exposes to recipes, with their types.
RECORD_FIELDS: dict[str, dict[str, str]] = {
    "text": {"text": "str", "tokens": "int", "prompt_tokens": "int", "logprob": "float", "finish": "str",
             "index": "int", "rounds": "int"},
    "score": {"score": "float", "label": "str", "logprob": "float", "text": "str", "probs": "list[float]"},
    "vote": {"answer": ANY, "share": "float", "share_all": "float", "margin": "float", "votes": "int",
             "total": "int", "counts": "dict", "stopped_early": "bool"},
    "refined": {"value": ANY, "score": "float", "rounds": "int", "history": "list[dict]", "first": ANY,
                "stopped": "bool"},
    "search": {"best": "str", "value": "float", "path": "list[str]", "nodes": "int", "simulations": "int"},
    "result": {"answer": ANY, "score": "float", "abstained": "bool", "reason": "str"},
}
NUMERIC = {"int", "float", "score", ANY, "vote", "refined", "result", "bool"}
TEXTUAL = {"str", "text", ANY, "vote", "refined", "result", "search"}
VECTORISED_FIELDS = {"text", "score", "label", "answer", "logprob", "tokens"}


def list_of(t: str) -> str:
    return f"list[{t}]"


def is_list(t: str) -> bool:
    return t.startswith("list[")


def elem(t: str) -> str:
    return t[5:-1] if is_list(t) else ANY


def assignable(src: str, dst: str) -> bool:
    """Whether a value of type ``src`` may be used where ``dst`` is expected."""
    if src == dst or ANY in (src, dst):
        return True
    if is_list(src) and is_list(dst):
        return assignable(elem(src), elem(dst))
    if dst == "float":
        return src in ("int", "score", "bool")
    if dst == "str":
        return src in ("text", "vote", "refined", "result", "search")
    return dst == "list[str]" and src == "str"  # a single stop string


def join(a: str, b: str) -> str:
    """The least type covering both (for list literals and if/else branches)."""
    if assignable(a, b):
        return b
    if assignable(b, a):
        return a
    return ANY


Report = Callable[[str, str, Any, str | None], None]


class ExprTyper:
    """Infers expression types, reporting problems through ``report(code, message, node, hint)``."""

    def __init__(self, resolve: Callable[[ast.Name], str | None], report: Report) -> None:
        self._resolve = resolve
        self._report = report

    def infer(self, node: Any) -> str:
        method = getattr(self, f"_{node.kind}")
        return str(method(node))

    def _name(self, node: ast.Name) -> str:
        t = self._resolve(node)
        return t if t is not None else ANY

    def _const(self, node: ast.Const) -> str:
        v = node.value
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        if isinstance(v, float):
            return "float"
        if v is None:
            return ANY
        return "str"

    def _regex(self, node: ast.RegexLit) -> str:
        return "regex"

    def _list(self, node: ast.ListExpr) -> str:
        if not node.items:
            return list_of(ANY)
        t = self.infer(node.items[0])
        for item in node.items[1:]:
            t = join(t, self.infer(item))
        return list_of(t)

    def _dict(self, node: ast.DictExpr) -> str:
        for v in node.values:
            self.infer(v)
        return "dict"

    def _attr(self, node: ast.Attr) -> str:
        base = self.infer(node.value)
        if base == ANY or base == "dict":
            return ANY
        if is_list(base):
            inner = elem(base)
            fields = RECORD_FIELDS.get(inner)
            if inner in (ANY, "dict"):
                return list_of(ANY)  # e.g. refined.history.score: one field of each record
            if fields and node.attr in fields and node.attr in VECTORISED_FIELDS:
                return list_of(fields[node.attr])
        fields = RECORD_FIELDS.get(base, {})
        if node.attr in fields:
            return fields[node.attr]
        if base == "result":
            return ANY  # declared outputs of the called recipe
        message = with_suggestion(f"a value of type {base} has no field '{node.attr}'", node.attr, fields)
        self._report("SF302", message, node, None)
        return ANY

    def _index(self, node: ast.Index) -> str:
        base = self.infer(node.value)
        key = self.infer(node.index)
        if is_list(base):
            if not assignable(key, "int"):
                self._report("SF301", f"list index must be an int, not {key}", node.index, None)
            return elem(base)
        if base in ("str", "text"):
            return "str"
        return ANY

    def _func(self, node: ast.Func) -> str:
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
        return result

    def _unary(self, node: ast.Unary) -> str:
        t = self.infer(node.operand)
        if node.op == "not":
            return "bool"
        if t not in NUMERIC and not is_list(t):
            self._report("SF301", f"cannot negate a value of type {t}", node, None)
        return "float" if t != "int" else "int"

    def _binop(self, node: ast.BinOp) -> str:
        left, right = self.infer(node.left), self.infer(node.right)
        op = node.op
        if op in ("and", "or", "==", "!="):
            return "bool"
        if op == "matches":
            if right != "regex":
                self._report("SF303", "'matches' needs a /regex/ on its right", node.right, None)
            return "bool"
        if op == "in":
            return "bool"
        if op in ("<", "<=", ">", ">="):
            for side, t in ((node.left, left), (node.right, right)):
                if t not in NUMERIC and t not in TEXTUAL:
                    self._report("SF301", f"cannot compare a value of type {t}", side, None)
            return "bool"
        if op == "+" and (left in ("str", "text") or right in ("str", "text")):
            return "str"
        for side, t in ((node.left, left), (node.right, right)):
            if t not in NUMERIC:
                hint = "extract a number first: `x = extract number from ...`" if t in ("text", "str") else None
                self._report("SF301", f"cannot apply '{op}' to a value of type {t}", side, hint)
                return ANY
        if left == "int" and right == "int" and op != "/":
            return "int"
        return "float"
