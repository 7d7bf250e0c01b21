"""The .sf expressions a prompt template reads (`{{ samples.text }}`, `{{ v.answer }}`), for the checker to type.

Templates and expressions share one meaning of `.field` and `[i]` (``sfdsl.values.attr_of``), so each chain
of field and constant-index reads on a recipe name becomes the .sf expression it means, and the checker types
it like any other: a field a value lacks is a compile error (SF302), not a failed render at run time.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from sfdsl import ast
from sfdsl.diagnostics import Span
from sfdsl.templates import JINJA_GLOBALS, TemplateError, environment

_CHAINS = (nodes.Getattr, nodes.Getitem)


def field_reads(text: str, span: Span) -> list[ast.Expr]:
    """The outermost field/index chains of a template rooted at a name it does not bind itself, as .sf
    expressions located at ``span``; a chain through anything else (a filter, a computed index) is left out.

    Raises:
        TemplateError: when the template does not parse.
    """
    try:
        parsed = environment().parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or "template syntax error", line=exc.lineno) from None
    bound = {n.name for n in parsed.find_all(nodes.Name) if n.ctx in ("store", "param")} | JINJA_GLOBALS
    chains: list[Any] = list(parsed.find_all(_CHAINS))
    inner = {id(chain.node) for chain in chains}
    found = [_expr(chain, span, bound) for chain in chains if id(chain) not in inner]
    return [expr for expr in found if expr is not None]


def root_name(expr: Any) -> str:
    """The name a field/index chain starts from."""
    while isinstance(expr, (ast.Attr, ast.Index)):
        expr = expr.value
    return str(expr.id)


def _expr(node: nodes.Node, span: Span, bound: set[str]) -> ast.Expr | None:
    if isinstance(node, nodes.Name):
        return None if node.name in bound else ast.Name(id=node.name, span=span)
    if isinstance(node, nodes.Getattr):
        base = _expr(node.node, span, bound)
        return None if base is None else ast.Attr(value=base, attr=node.attr, span=span)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
            and isinstance(node.arg.value, (int, str)) and not isinstance(node.arg.value, bool):
        base = _expr(node.node, span, bound)
        return None if base is None else ast.Index(value=base, index=ast.Const(value=node.arg.value, span=span),
                                                    span=span)
    return None
