"""The layout of the diagnosis app: its modules import each other in one direction only.

Read from the source (no import runs), so a circle hidden behind a function-level import is seen
too. The rules, from issue 14: no import circle between diagnosis modules, no module using
another's underscore names, and every import of a diagnosis module at the top of the file (a
function-level import is how a circle hides), except Django's ``AppConfig.ready``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "diagnosis"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE
#: Django wants signal and check registration in ``AppConfig.ready``, after the app registry loads.
READY_IMPORTS = {"diagnosis.apps"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in ROOT.rglob("*.py") if "migrations" not in path.parts}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name ``from ... import`` refers to, in ``module`` (a package's __init__ is itself)."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


class _Imports(ast.NodeVisitor):
    """Every diagnosis module one file imports, whether at module level, and the names it takes."""

    def __init__(self, module: str):
        self.module = module
        self.depth = 0
        self.edges: list[tuple[str, int, bool]] = []  # (target module, line, at module level)
        self.private_names: list[tuple[str, int]] = []
        self.module_aliases: dict[str, str] = {}

    def _add(self, target: str, node):
        if target in MODULES and target != self.module:
            self.edges.append((target, node.lineno, self.depth == 0))

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node)
            if alias.asname and alias.name in MODULES:
                self.module_aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node):
        source = _resolve(self.module, node)
        if not source.startswith(PACKAGE):
            return
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in MODULES:  # from . import services
                self._add(submodule, node)
                self.module_aliases[alias.asname or alias.name] = submodule
            else:  # from .services import create_submission
                self._add(source, node)
                if alias.name.startswith("_"):
                    self.private_names.append((f"{source}.{alias.name}", node.lineno))

    def visit_Attribute(self, node):
        if (isinstance(node.value, ast.Name) and node.value.id in self.module_aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            self.private_names.append((f"{self.module_aliases[node.value.id]}.{node.attr}", node.lineno))
        self.generic_visit(node)


def _scan() -> dict[str, _Imports]:
    scanned = {}
    for module, path in MODULES.items():
        visitor = _Imports(module)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        scanned[module] = visitor
    return scanned


SCANNED = _scan()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, done = [], set()

    def visit(node, path):
        if node in path:
            found.append(path[path.index(node):] + [node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, path + [node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


def test_the_scan_sees_the_analysis_path():
    """Guards the test itself: the known edges of the lifecycle are found."""
    edges = {module: {target for target, _, _ in scan.edges} for module, scan in SCANNED.items()}
    assert "diagnosis.analysis" in edges["diagnosis.tasks"]
    assert "diagnosis.publish" in edges["diagnosis.services"] and "diagnosis.publish" in edges["diagnosis.bulk"]
    assert "diagnosis.tasks" in edges["diagnosis.publish"]


def test_diagnosis_modules_import_each_other_without_a_circle():
    graph = {module: {target for target, _, _ in scan.edges} for module, scan in SCANNED.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_uses_another_modules_private_names():
    crossing = [f"{module}:{line} uses {name}" for module, scan in SCANNED.items()
                for name, line in scan.private_names]
    assert crossing == []


@pytest.mark.parametrize("module", sorted(set(MODULES) - READY_IMPORTS))
def test_diagnosis_modules_are_imported_at_the_top_of_the_file(module):
    hidden = [f"{target} (line {line})" for target, line, top in SCANNED[module].edges if not top]
    assert hidden == [], f"{module} imports inside a function: {hidden}"


def test_lifecycle_depends_on_nothing_that_uploads_or_sweeps():
    """Uploads, bulk imports and the sweepers depend on the lifecycle, never the other way round."""
    graph = {module: {target for target, _, _ in scan.edges} for module, scan in SCANNED.items()}

    def reachable(start):
        seen, todo = set(), [start]
        while todo:
            for target in graph.get(todo.pop(), ()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    below = reachable("diagnosis.analysis")
    assert not below & {"diagnosis.services", "diagnosis.bulk", "diagnosis.recovery", "diagnosis.publish",
                        "diagnosis.tasks", "diagnosis.periodic_tasks"}
