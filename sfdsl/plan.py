"""The execution plan: one networkx DiGraph per block, composite nodes holding body sub-plans.

Nodes are statements; edges are data dependencies (a name or template variable
read) and control dependencies (a statement that may exit the block runs before
everything after it). A recipe is planned once, nested blocks included (loop
bodies, search parts, if branches); the cost pass and the executor read the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import networkx as nx

from sfdsl import ast
from sfdsl.registry import kind_of
from sfdsl.templates import TemplateError, variables

CONTROL_STMTS = ("if", "return", "abstain", "stop")


@dataclass
class Plan:
    """A block's graph; node attributes: ``stmt`` (AST node), ``kind``, ``label``, ``bodies`` (name → Plan).

    A recipe's plan (``plan_recipe``) also carries the recipe's prompt and model declarations by name.
    """

    graph: nx.DiGraph
    order: list[str] = field(default_factory=list)
    prompts: dict[str, ast.PromptDecl] = field(default_factory=dict)
    models: dict[str, ast.ModelDecl] = field(default_factory=dict)

    def node(self, node_id: str) -> dict[str, Any]:
        return self.graph.nodes[node_id]  # type: ignore[no-any-return]


def plan_recipe(recipe: ast.RecipeDecl) -> Plan:
    """A recipe's plan, carrying its prompt and model declarations."""
    prompts = collect_prompts(recipe.body)
    plan = build_plan(recipe.body, prompts)
    plan.prompts, plan.models = prompts, collect_models(recipe.body)
    return plan


def build_plan(block: ast.Block, prompts: dict[str, ast.PromptDecl]) -> Plan:
    """Compile a block into its plan, recursing into composite bodies."""
    graph = nx.DiGraph()
    order: list[str] = []
    defined_by: dict[str, str] = {}
    exits_before: list[str] = []
    for stmt in block.stmts:
        if stmt.stmt in ("model", "prompt"):
            continue
        node_id = _node_id(stmt, graph)
        kind, value = _kind(stmt)
        graph.add_node(node_id, stmt=stmt, kind=kind, label=_label(value, kind), bodies=_bodies(stmt, value, prompts))
        order.append(node_id)
        for name in sorted(reads(stmt, prompts)):
            if name in defined_by:
                graph.add_edge(defined_by[name], node_id, kind="data", name=name)
        for gate in exits_before:
            if not graph.has_edge(gate, node_id):
                graph.add_edge(gate, node_id, kind="control")
        for name in writes(stmt):
            defined_by[name] = node_id
        if stmt.stmt in CONTROL_STMTS:
            exits_before.append(node_id)
    return Plan(graph=graph, order=order)


def _node_id(stmt: Any, graph: nx.DiGraph) -> str:
    base = stmt.target if stmt.stmt == "assign" else f"{stmt.stmt}@{stmt.span.line}:{stmt.span.column}"
    node_id, i = base, 2
    while node_id in graph:
        node_id, i = f"{base}#{i}", i + 1
    return node_id


def _kind(stmt: Any) -> tuple[str, Any]:
    value = getattr(stmt, "value", None)
    if stmt.stmt in ("assign", "return", "next", "yield") and value is not None and ast.is_step(value):
        return (value.kind if stmt.stmt == "assign" else f"{stmt.stmt}:{value.kind}"), value
    if stmt.stmt == "assign":
        return "compute", value
    return stmt.stmt, value


def _label(value: Any, kind: str) -> str:
    detail = kind_of(value).label(value) if ast.is_step(value) else ""  # type: ignore[misc]
    return f"{kind} {detail}".strip()


def _bodies(stmt: Any, value: Any, prompts: dict[str, ast.PromptDecl]) -> dict[str, Plan]:
    if stmt.stmt == "if":
        branches = {"then": stmt.then, "else": stmt.orelse}
        return {name: build_plan(block, prompts) for name, block in branches.items() if block is not None}
    if value is None or not ast.is_step(value):
        return {}
    return {name: build_plan(block, prompts) for name, block in kind_of(value).bodies(value).items()}


def writes(stmt: Any, memo: dict[int, set[str]] | None = None) -> set[str]:
    """Names a statement defines in its block (an if defines what both branches define).

    ``memo`` remembers nested ifs already seen, so that a walk over an `else if` chain stays linear.
    """
    if stmt.stmt == "assign":
        return {stmt.target}
    if stmt.stmt != "if" or stmt.orelse is None:
        return set()
    if memo is not None and id(stmt) in memo:
        return memo[id(stmt)]
    then = set().union(*(writes(s, memo) for s in stmt.then.stmts)) if stmt.then.stmts else set()
    other = set().union(*(writes(s, memo) for s in stmt.orelse.stmts)) if stmt.orelse.stmts else set()
    if memo is not None:
        memo[id(stmt)] = then & other
    return then & other


def reads(node: Any, prompts: dict[str, ast.PromptDecl]) -> set[str]:
    """Every free name a statement, step or expression reads, template variables included."""
    names: set[str] = set()
    _collect(node, prompts, names, {})
    return names


def _collect(node: Any, prompts: dict[str, ast.PromptDecl], out: set[str], memo: dict[int, set[str]],
             skip: frozenset[int] = frozenset()) -> None:
    if node is None:
        return
    if isinstance(node, list):
        for item in node:
            _collect(item, prompts, out, memo, skip)
        return
    if isinstance(node, ast.Name):
        out.add(node.id)
        return
    if isinstance(node, ast.Block):
        if id(node) in skip:
            return
        inner: set[str] = set()
        bound: set[str] = set()
        for stmt in node.stmts:
            _collect(stmt, prompts, inner, memo)
            bound |= writes(stmt, memo)
        out |= inner - bound
        return
    if ast.is_step(node):
        _collect_step(node, prompts, out, memo)
        return
    if isinstance(node, ast.Node):
        for name in type(node).model_fields:
            if name != "span":
                _collect(getattr(node, name), prompts, out, memo, skip)


def _collect_step(node: Any, prompts: dict[str, ast.PromptDecl], out: set[str], memo: dict[int, set[str]]) -> None:
    """A step reads its prompt's variables, its fields, and its bodies less the names it binds there."""
    kind = kind_of(node)
    if isinstance(getattr(node, "prompt", None), str):
        out |= prompt_reads(node.prompt, prompts)
    bodies = kind.bodies(node)
    skip = frozenset(id(block) for block in bodies.values())
    for name in type(node).model_fields:
        child = getattr(node, name)
        if name == "args":
            for arg in child:
                if arg.name == "prompt" and isinstance(arg.value, ast.Name):
                    out |= prompt_reads(arg.value.id, prompts) - set(kind.supplies)
                else:
                    _collect(arg.value, prompts, out, memo)
        elif name != "span":
            _collect(child, prompts, out, memo, skip)
    inner: set[str] = set()
    for block in bodies.values():
        _collect(block, prompts, inner, memo)
    out |= inner - set(kind.binds(node))


def prompt_reads(name: str, prompts: dict[str, ast.PromptDecl]) -> set[str]:
    decl = prompts.get(name)
    if decl is None:
        return set()
    texts = [decl.text] if decl.text is not None else [t.text for t in decl.turns or []]
    names: set[str] = set()
    for text in texts:
        names |= _template_names(text)
    return names


@lru_cache(maxsize=4096)
def _template_names(text: str) -> frozenset[str]:
    """The variables of a template; parsed once per text, since every plan of every block asks again."""
    try:
        return frozenset(variables(text))
    except TemplateError:
        return frozenset()


def collect_prompts(block: ast.Block) -> dict[str, ast.PromptDecl]:
    return {s.name: s for s in block.stmts if isinstance(s, ast.PromptDecl)}


def collect_models(block: ast.Block) -> dict[str, ast.ModelDecl]:
    return {s.name: s for s in block.stmts if isinstance(s, ast.ModelDecl)}


# ---------------------------------------------------------------- rendering


def dump(plan: Plan, indent: int = 0) -> str:
    """A stable text dump of a plan, for golden tests and `sfrun graph --format text`."""
    lines: list[str] = []
    pad = "  " * indent
    for node_id in plan.order:
        data = plan.graph.nodes[node_id]
        deps = sorted(plan.graph.predecessors(node_id))
        dep_text = f" <- {', '.join(deps)}" if deps else ""
        lines.append(f"{pad}{node_id}: {data['label']}{dep_text}")
        for name, body in data["bodies"].items():
            lines.append(f"{pad}  [{name}]")
            lines.append(dump(body, indent + 2))
    return "\n".join(line for line in lines if line)


def to_mermaid(plan: Plan, title: str) -> str:
    """A Mermaid flowchart; composite nodes become subgraphs."""
    lines = ["flowchart TD", f"  %% recipe {title}"]
    _mermaid(plan, lines, "")
    return "\n".join(lines)


def _mid(prefix: str, node_id: str) -> str:
    return (prefix + node_id).replace("@", "_at_").replace(":", "_").replace("#", "_").replace(".", "__")


def _mermaid(plan: Plan, lines: list[str], prefix: str) -> None:
    for node_id in plan.order:
        data = plan.graph.nodes[node_id]
        mid = _mid(prefix, node_id)
        label = f"{node_id}: {data['label']}".replace('"', "'")
        if data["bodies"]:
            lines.append(f'  subgraph {mid}["{label}"]')
            for name, body in data["bodies"].items():
                _mermaid(body, lines, f"{prefix}{node_id}.{name}.")
            lines.append("  end")
        else:
            lines.append(f'  {mid}["{label}"]')
    for a, b, data in plan.graph.edges(data=True):
        arrow = "-.->" if data.get("kind") == "control" else "-->"
        lines.append(f"  {_mid(prefix, a)} {arrow} {_mid(prefix, b)}")


def to_dot(plan: Plan, title: str) -> str:
    """A Graphviz digraph; composite nodes become clusters."""
    lines = [f'digraph "{title}" {{', "  node [shape=box, fontname=monospace];"]
    counter = [0]
    _dot(plan, lines, "", counter)
    lines.append("}")
    return "\n".join(lines)


def _dot(plan: Plan, lines: list[str], prefix: str, counter: list[int]) -> None:
    for node_id in plan.order:
        data = plan.graph.nodes[node_id]
        did = _mid(prefix, node_id)
        label = f"{node_id}: {data['label']}".replace('"', "'")
        lines.append(f'  {did} [label="{label}"{", style=bold" if data["bodies"] else ""}];')
        for name, body in data["bodies"].items():
            counter[0] += 1
            lines.append(f'  subgraph cluster_{counter[0]} {{ label="{node_id} {name}";')
            _dot(body, lines, f"{prefix}{node_id}.{name}.", counter)
            lines.append("  }")
    for a, b, data in plan.graph.edges(data=True):
        style = " [style=dashed]" if data.get("kind") == "control" else ""
        lines.append(f"  {_mid(prefix, a)} -> {_mid(prefix, b)}{style};")
