"""The package's import graph has layers: no module cycle, no cycle between its packages, and no subpackage reaching
up into the entry-point modules at the top (wavalign.cli, .module, .commands, .__main__).

The graph is read from the source with `ast`, nothing is imported: every `import` and `from ... import` anywhere in a
module (inside functions too, since a lazy import is still a dependency), except under `if TYPE_CHECKING:` (never
run). `from package import name` counts as importing the submodule when `name` is one. An edge names the module that
is imported, not the packages Python initialises on the way (they would make every subpackage depend on itself).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "wavalign"
TOP_ENTRY_POINTS = {f"{ROOT}.cli", f"{ROOT}.module", f"{ROOT}.commands", f"{ROOT}.__main__"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    out = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside `if TYPE_CHECKING:` bodies (their `else:` still runs)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _nearest(name: str, modules: set[str]) -> str | None:
    """The longest prefix of `name` that is one of our modules (`wavalign.x.Thing` -> `wavalign.x`), or None."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module of ours -> line of the first such import}."""
    files = module_files()
    modules = set(files)
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, int] = {}
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from the module's own package, up level - 1 more
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - (node.level - 1)]
                    base = ".".join([*package, *([base] if base else [])])
                named = [f"{base}.{alias.name}" for alias in node.names]
                targets = [sub if sub in modules else base for sub in named]  # a submodule, else the package
            for target in targets:
                ours = _nearest(target, modules)
                if ours is not None and ours != name:
                    edges.setdefault(ours, node.lineno)
        graph[name] = edges
    return graph


def package_of(module: str) -> str:
    """The first-level package a module belongs to: `wavalign.gates.hpt` -> `wavalign.gates`; the top-level modules
    (cli, module, commands, ...) -> `wavalign`."""
    parts = module.split(".")
    if len(parts) >= 2 and (SRC / ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return ROOT


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one node, each sorted; iterative, so deep graphs do not hit the recursion
    limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest cycle inside a component, from its first member back to it (breadth first)."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    return component


def module_cycles() -> list[str]:
    graph = {m: set(edges) for m, edges in import_graph().items()}
    return [" -> ".join(cycle_through(graph, c)) for c in strongly_connected(graph)]


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the module imports that make the edge ("a.b:12 -> c.d")."""
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for module, edges in import_graph().items():
        for target, line in edges.items():
            a, b = package_of(module), package_of(target)
            if a != b:
                out[(a, b)].append(f"{module}:{line} -> {target}")
    return out


def package_cycles() -> list[str]:
    edges = package_edges()
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
        graph.setdefault(b, set())
    report = []
    for component in strongly_connected(dict(graph)):
        path = cycle_through(dict(graph), component)
        lines = [" -> ".join(path)]
        for a, b in zip(path, path[1:]):
            lines += [f"    {a} -> {b}: {why}" for why in edges[(a, b)]]
        report.append("\n".join(lines))
    return report


def upward_imports() -> list[str]:
    """Imports of a top-level entry-point module from inside a subpackage."""
    return [
        f"{module}:{line} imports {target}"
        for module, edges in sorted(import_graph().items())
        if package_of(module) != ROOT
        for target, line in sorted(edges.items())
        if target in TOP_ENTRY_POINTS
    ]


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert f"{ROOT}.world.prepare" in graph[f"{ROOT}.cli"]  # a lazy import inside a method counts
    assert f"{ROOT}.world.settings" in graph[f"{ROOT}.world.prepare"]
    assert package_of(f"{ROOT}.gates.hpt") == f"{ROOT}.gates" and package_of(f"{ROOT}.cli") == ROOT


def test_no_module_cycle() -> None:
    cycles = module_cycles()
    assert not cycles, "modules that import each other:\n" + "\n".join(cycles)


def test_no_package_cycle() -> None:
    cycles = package_cycles()
    assert not cycles, "packages that import each other:\n" + "\n".join(cycles)


def test_no_subpackage_imports_the_entry_point_modules() -> None:
    found = upward_imports()
    assert not found, "subpackages importing the top-level entry points:\n" + "\n".join(found)
