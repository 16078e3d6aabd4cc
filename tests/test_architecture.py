"""The package's shape: no import cycles (module-level or inside functions) and no private name
of one module used by another, in the core package and the built-in adapters."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("biqa_bench", "methods")


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _target(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(modules: dict[str, Path]):
    """(importer, imported module, private names taken from it) for every import statement."""
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules:
                        yield module, alias.name, []
            elif isinstance(node, ast.ImportFrom):
                target = _target(module, path, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:
                        yield module, f"{target}.{alias.name}", []
                    elif target in modules:
                        private = alias.name.startswith("_") and not alias.name.startswith("__")
                        yield module, target, [alias.name] if private else []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_even_through_imports_inside_functions():
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in _imports(_modules()):
        if importer != imported:
            graph.setdefault(importer, set()).add(imported)
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_a_function_level_import():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_private_name_is_imported_from_another_module():
    leaks = [(importer, imported, names) for importer, imported, names in _imports(_modules()) if names]
    assert leaks == []


def test_no_private_attribute_of_another_module_is_used():
    modules = _modules()
    leaks = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, path, node)
                aliases.update({a.asname or a.name: f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules})
            elif isinstance(node, ast.Import):
                aliases.update({a.asname: a.name for a in node.names if a.name in modules and a.asname})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                leaks.append((module, aliases[node.value.id], node.attr))
    assert leaks == []


def test_method_support_lives_beside_the_methods_and_discovery_skips_it():
    from biqa_bench.methods import method_names

    assert not (ROOT / "biqa_bench" / "enhance.py").exists() and not (ROOT / "biqa_bench" / "pretrain.py").exists()
    assert (ROOT / "methods" / "_support" / "enhance.py").is_file()
    assert not {"enhance", "pretrain", "_support"} & set(method_names())


def test_no_function_in_the_core_package_is_over_100_lines():
    """The flow stays readable: a function that grows past 100 lines is split (issue #18)."""
    long = []
    for module, path in _modules().items():
        if not module.startswith("biqa_bench"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 100:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
