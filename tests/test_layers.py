"""The package's layout is the pipeline: imports only go downwards, and no import closes a circle.

From the bottom: ``errors``, ``resources``, ``namespaces``, ``version`` -> ``inputs`` ->
``knowledge`` -> ``reasoning`` -> ``outputs`` -> ``authoring`` -> the entry points (``cli``,
``batch``, ``service``, and the public API in ``jdm_kg/__init__.py``). A module may import
modules of its own layer or below. Imports under ``if TYPE_CHECKING:`` (types only, never run)
are not counted; imports inside functions are.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jdm_kg"

LAYERS = [
    {"jdm_kg.errors", "jdm_kg.resources", "jdm_kg.namespaces", "jdm_kg.version"},
    {"jdm_kg.inputs"},
    {"jdm_kg.knowledge"},
    {"jdm_kg.reasoning"},
    {"jdm_kg.outputs"},
    {"jdm_kg.authoring"},
    {"jdm_kg", "jdm_kg.cli", "jdm_kg.batch", "jdm_kg.service"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer of a module: that of the longest listed name it is or is inside."""
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    assert found is not None, f"{module} is in no layer: add it to LAYERS in tests/test_layers.py"
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skipped


def imports_of(path: Path, known: set[str], here: str | None = None) -> list[tuple[str, int]]:
    """(module imported, line) for every jdm_kg import in the file (the module ``here``), resolved to a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    found = []
    here = here or _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "jdm_kg"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "jdm_kg":
                continue
            for alias in node.names:  # "from jdm_kg.x import y": y may be a module
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else base, node.lineno))
    return found


def _graph() -> dict[str, list[tuple[str, int]]]:
    modules = _modules()
    return {name: [(m, line) for m, line in imports_of(path, set(modules)) if m != name]
            for name, path in modules.items()}


def test_imports_only_go_downwards():
    upwards = [f"{module} line {line} imports {target} ({layer_of(module)} < {layer_of(target)})"
               for module, targets in _graph().items() for target, line in targets
               if layer_of(target) > layer_of(module)]
    assert upwards == []


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Every circle of imports found by a depth-first walk (one per back edge)."""
    found, state = [], {}
    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target, _ in graph.get(node, []):
            if state.get(target) == "open":
                found.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = "done"
    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_closes_a_circle():
    graph = {module: [(t, line) for t, line in targets if t != "jdm_kg"] for module, targets in _graph().items()}
    assert cycles(graph) == []  # "jdm_kg" itself (the public API) runs first on any import: not an edge


def test_the_checks_can_fail(tmp_path):
    """An upward import and a circle are found (a check that cannot fail is worse than none)."""
    assert layer_of("jdm_kg.inputs.fhir") < layer_of("jdm_kg.reasoning.engines")
    assert cycles({"a": [("b", 1)], "b": [("c", 2)], "c": [("a", 3)]}) == [["a", "b", "c", "a"]]
    assert cycles({"a": [("b", 1)], "b": []}) == []
    tree_text = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from jdm_kg.cli import main\nfrom jdm_kg.errors import InputError\n"
    probe = tmp_path / "probe.py"
    probe.write_text(tree_text + "from ..reasoning import engines\n")
    found = imports_of(probe, set(_modules()), "jdm_kg.inputs.probe")
    assert found == [("jdm_kg.errors", 4), ("jdm_kg.reasoning.engines", 5)]  # type-only import not counted
    assert layer_of(found[1][0]) > layer_of("jdm_kg.inputs.probe")  # an upward import, found
