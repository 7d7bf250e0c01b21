"""Parser limits: how deeply code may nest, checked before anything recursive runs.

The LALR parser is iterative, but the passes after it (AST building, checks, plans, costs, evaluation) walk
the tree recursively. So the parse tree is measured first, without recursion: code nested deeper than
``MAX_DEPTH`` levels is a located compile error, and the AST is then built bottom-up without recursion.
Calls between recipes are measured the same way in sfdsl/call_graph.py.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, Tree

from sfdsl.diagnostics import Diagnostic, Span

#: Deepest nesting of the AST (brackets, blocks, `else if` branches, operators of one chain) that compiles.
MAX_DEPTH = 150
#: Parser stack height at which parsing stops early; far above anything MAX_DEPTH lets through.
MAX_PARSER_STACK = 8 * MAX_DEPTH
#: Rules that fold a flat run of operands into a left-deep chain of binary operations.
CHAINS = {"sum": 2, "product": 2, "comparison": 2, "or_expr": 1, "and_expr": 1}
#: Rules that become other than one level of the AST: `else if` wraps the inner if in a block; a dict's key-value
#: pair, and the lists of arguments and fields, are parts of their parent node.
LEVELS = {"if_stmt": 2, "pair": 0, "args": 0, "with_args": 0, "fields": 0}


def too_deep(span: Span) -> Diagnostic:
    """The diagnostic for code nested past the limit."""
    return Diagnostic(
        code="SF113",
        message=f"code nested too deeply (more than {MAX_DEPTH} levels)",
        span=span,
        hint="split it up: name inner parts with `x = ...` steps, or move them into a recipe and `call` it",
    )


def depth_problem(tree: Tree[Token], file: str) -> Diagnostic | None:
    """A located SF113 diagnostic for the outermost node nested past ``MAX_DEPTH``, or None."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        inner = depth + _levels(node)
        if inner > MAX_DEPTH:
            return too_deep(_span(file, node))
        stack.extend((child, inner) for child in node.children if isinstance(child, Tree))
    return None


def transform(transformer: Transformer[Token, Any], tree: Tree[Token]) -> Any:
    """``transformer.transform(tree)`` bottom-up with an explicit stack, so depth costs no recursion."""
    done: list[Any] = []
    stack: list[tuple[Tree[Token], int, list[Any]]] = [(tree, 0, [])]
    while stack:
        node, next_child, children = stack[-1]
        if next_child < len(node.children):
            child = node.children[next_child]
            stack[-1] = (node, next_child + 1, children)
            if isinstance(child, Tree):
                stack.append((child, 0, []))
            else:
                children.append(child)
            continue
        stack.pop()
        value = transformer.transform(Tree(node.data, children, node.meta))
        (stack[-1][2] if stack else done).append(value)
    return done[0]


def _levels(node: Tree[Token]) -> int:
    """How many AST levels a parse-tree node becomes."""
    per_operand = CHAINS.get(str(node.data))
    if per_operand is not None:
        return max(1, (len(node.children) + per_operand - 1) // per_operand - 1)
    return LEVELS.get(str(node.data), 1)


def _span(file: str, node: Tree[Token]) -> Span:
    """Where the node starts: its whole extent would underline all the nesting."""
    meta = node.meta
    if getattr(meta, "empty", True):
        return Span(file=file)
    return Span(file=file, line=meta.line, column=meta.column, end_line=meta.line, end_column=meta.column + 1)
