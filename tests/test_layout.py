"""The layout, checked from the source: no import circles in engine/ or daw_bridge/, the runtime never imports the
training lab, and the bridge never imports the engine or torch. Every import counts, also those inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "daw_bridge")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path, name: str, modules: set[str] = frozenset()) -> set[str]:
    """Absolute names of everything a module imports: `from pkg import mod` names pkg.mod when that is one of
    `modules` (a submodule), else pkg."""
    is_package = path.name == "__init__.py"
    package_parts = name.split(".") if is_package else name.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[:len(package_parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                names.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: {n for n in imported_names(path, name, set(modules)) if n in modules and n != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other round in a circle, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "engine.params" in graph["engine.dsp"]  # from .params import ...
    assert "engine.training.analysis" in graph["engine.training.dataset"]  # from . import analysis
    assert "engine.training.train" in graph["engine.cli"]  # imported inside a function


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_runtime_never_imports_the_training_lab():
    offenders = {name: sorted(n for n in targets if n.startswith("engine.training"))
                 for name, targets in import_graph().items()
                 if name.startswith("engine") and not name.startswith("engine.training") and name != "engine.cli"}
    assert not {k: v for k, v in offenders.items() if v}


def test_bridge_never_imports_engine_or_torch():
    modules = project_modules()
    for name, path in modules.items():
        if name.startswith("daw_bridge"):
            roots = {n.split(".")[0] for n in imported_names(path, name)}
            assert not roots & {"engine", "torch"}, f"{name} imports {sorted(roots & {'engine', 'torch'})}"
