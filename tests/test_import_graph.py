"""The import graph of sfdsl has no circles, and the front end reaches no runtime module.

Every module of ``sfdsl/``, ``grammar/`` and ``runtime/`` is parsed (not imported) as the ``sfdsl.*`` package
it installs as (pyproject's package-dir). An edge is an import at module level or under ``if TYPE_CHECKING:``
(a type-only circle is still a circle); imports inside functions are deliberate deferrals and not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
#: Installed package → source folder (pyproject.toml's package-dir).
PACKAGES = {"sfdsl": REPO / "sfdsl", "sfdsl.grammar": REPO / "grammar", "sfdsl.runtime": REPO / "runtime"}
#: The front end: text to checked program and plan; none of it may reach sfdsl.runtime, even for types.
FRONT_END = ("sfdsl.parser", "sfdsl.checker", "sfdsl.compiler", "sfdsl.cost", "sfdsl.plan", "sfdsl.registry")


def modules() -> dict[str, Path]:
    """Every module by its installed dotted name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for file in sorted(folder.rglob("*.py")):
            parts = list(file.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = file
    return found


def _imports(body: list[ast.stmt], module: str, is_package: bool) -> Iterator[str]:
    """Dotted names a module body imports, at its top level and under `if`/`try` (TYPE_CHECKING included)."""
    for stmt in body:
        if isinstance(stmt, ast.Import):
            yield from (alias.name for alias in stmt.names)
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            if stmt.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - stmt.level + 1]
                base = ".".join([*package, base] if base else package)
            yield from (f"{base}.{alias.name}" for alias in stmt.names)
        elif isinstance(stmt, ast.If):
            yield from _imports(stmt.body + stmt.orelse, module, is_package)
        elif isinstance(stmt, ast.Try):
            yield from _imports(stmt.body + stmt.orelse + stmt.finalbody, module, is_package)


def import_graph() -> nx.DiGraph:
    """module → the sfdsl modules it imports."""
    known = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, file in known.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for target in _imports(tree.body, name, file.name == "__init__.py"):
            while target and target not in known:  # `from pkg import name` names a module or an attribute
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.add_edge(name, target)
    return graph


def test_the_graph_sees_every_package() -> None:
    graph = import_graph()
    assert {"sfdsl.compiler", "sfdsl.grammar.loader", "sfdsl.runtime.executor", "sfdsl.steps.call"} <= set(graph)
    assert graph.has_edge("sfdsl.runtime.executor", "sfdsl.compiler")


def test_no_module_imports_itself_through_others() -> None:
    circles = sorted(sorted(c) for c in nx.simple_cycles(import_graph()))
    assert circles == [], "import circles: " + "; ".join(" → ".join(c) for c in circles)


def test_the_front_end_reaches_no_runtime_module() -> None:
    graph = import_graph()
    for module in FRONT_END:
        reached = sorted(m for m in nx.descendants(graph, module) if m.startswith("sfdsl.runtime"))
        assert reached == [], f"{module} reaches {reached}"
