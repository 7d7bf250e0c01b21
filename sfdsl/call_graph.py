"""The call graph of a program: how deeply recipes call recipes, measured before any pass follows calls.

The cost pass follows calls into the recipes they call, recursively. So the call graph is measured first,
without recursion: calls nested deeper than ``MAX_CALL_DEPTH`` recipes, or one recipe whose calls reach more
than ``MAX_CALL_REACH`` recipe bodies, is a located compile error (SF116).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sfdsl import ast
from sfdsl.diagnostics import Diagnostic, Span
from sfdsl.steps.call import CallRecipe

if TYPE_CHECKING:
    from sfdsl.program import ParsedProgram

#: Deepest chain of recipes calling recipes, and most recipe bodies one recipe's calls may reach in all.
MAX_CALL_DEPTH = 32
MAX_CALL_REACH = 1_000


def call_problems(program: ParsedProgram) -> list[Diagnostic]:
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


def _calls(recipe: ast.RecipeDecl) -> list[CallRecipe]:
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
