"""Compiler limits: how deeply code and calls may nest, checked before anything recursive runs.

The LALR parser is iterative, but the passes after it (AST building, checks, plans, costs, evaluation) walk
the tree recursively, and the cost pass follows calls into the recipes they call. So the parse tree is
measured first, without recursion: code nested deeper than ``MAX_DEPTH`` levels is a located compile error,
and the AST is then built bottom-up without recursion. Calls are measured on the call graph the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lark import Token, Transformer, Tree

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.steps.call import CallRecipe

if TYPE_CHECKING:
    from sfdsl.program import Program

#: Deepest nesting of the AST (brackets, blocks, `else if` branches, operators of one chain) that compiles.
MAX_DEPTH = 150
#: Deepest chain of recipes calling recipes, and most recipe bodies one recipe's calls may reach in all.
MAX_CALL_DEPTH = 32
MAX_CALL_REACH = 1_000
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


def call_problems(program: Program) -> list[Diagnostic]:
    """A located SF116 diagnostic when calls nest deeper than ``MAX_CALL_DEPTH`` recipes, or when one recipe's
    calls, followed down, reach more than ``MAX_CALL_REACH`` recipe bodies (each must be bounded); else []."""
    graph: dict[tuple[str, str], list[tuple[tuple[str, str], Span]]] = {}
    for file, module in program.modules.items():
        for recipe in module.recipes:
            edges = graph.setdefault((file, recipe.name), [])
            for call in _calls(recipe):
                found = program.resolve_call(file, call.target)
                if found is not None:
                    edges.append(((found[0], found[1].name), call.span))
    depth: dict[tuple[str, str], int] = {}
    reach: dict[tuple[str, str], int] = {}
    active: set[tuple[str, str]] = set()
    for root in graph:
        stack = [(root, False)]
        while stack:  # post-order without recursion; a cycle (SF510, reported by the checker) counts as a leaf
            node, done = stack.pop()
            if node in depth or (node in active and not done):
                continue
            if not done:
                active.add(node)
                stack.append((node, True))
                stack.extend((c, False) for c, _ in graph[node] if c not in depth and c not in active)
                continue
            active.discard(node)
            known = [(callee, span) for callee, span in graph[node] if callee in depth]
            depth[node] = 1 + max((depth[c] for c, _ in known), default=0)
            reach[node] = 1 + sum(reach[c] for c, _ in known)
            deepest = max(known, key=lambda edge: depth[edge[0]], default=None)
            if deepest is not None and (depth[node] > MAX_CALL_DEPTH or reach[node] > MAX_CALL_REACH):
                return [Diagnostic(
                    code="SF116",
                    message=(f"calls nest too deeply (more than {MAX_CALL_DEPTH} recipes)"
                             if depth[node] > MAX_CALL_DEPTH else
                             f"calls reach too many recipes (more than {MAX_CALL_REACH} to bound)"),
                    span=deepest[1],
                    hint="call fewer recipes in a row: inline the small ones, or loop with `map` or `refine`",
                )]
    return []


def _calls(recipe: ast.Recipe) -> list[CallRecipe]:
    """Every `call` step inside a recipe, found without recursion."""
    found: list[CallRecipe] = []
    stack: list[Any] = [recipe.body]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, ast.Node):
            if isinstance(node, CallRecipe):
                found.append(node)
            stack.extend(getattr(node, name) for name in type(node).model_fields if name != "span")
    return found
