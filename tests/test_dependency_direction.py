"""The dependency direction of DESIGN.md, checked on every module's imports (AST, no import):
the top-level direction, no import cycle between the product's modules, and no function-local
import inside chipctl (the way a cycle used to be hidden). The layers inside chipctl are
import-linter contracts (pyproject.toml), checked by `lint-imports` in .ci/run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = {"chipctl", "drivers", "gui", "hardware_sim"}
FORBIDDEN = {
    "chipctl": {"gui", "hardware_sim", "PySide6", "pyqtgraph"},
    "drivers": {"chipctl", "gui", "hardware_sim", "PySide6", "pyqtgraph", "cv2"},
    "gui": {"drivers", "hardware_sim"},
    "hardware_sim": {"chipctl", "drivers", "gui", "PySide6", "pyqtgraph"},
}


def imported_top_levels(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) for every absolute import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value).split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_dependency_direction(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"package {package} has no modules"
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in files
        for line, name in imported_top_levels(path)
        if name in FORBIDDEN[package]
    ]
    assert not violations, "imports against DESIGN.md's direction:\n" + "\n".join(violations)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom hardware_sim.world import World\nimport PySide6.QtCore\n")
    names = {name for _, name in imported_top_levels(bad)}
    assert {"hardware_sim", "PySide6"} <= names


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import that runs (not those under `if TYPE_CHECKING:`)."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
               for n in ast.walk(node)}
    return [n for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skipped]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Product module -> the product modules it imports when it runs."""
    files = {module_name(p): p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [t if t in files else node.module for t in targets]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_product_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_function_local_import_of_a_product_module_in_the_core() -> None:
    local = []
    for path in sorted((ROOT / "chipctl").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                local += [f"{path.relative_to(ROOT)}:{n.lineno}" for n, name in
                          imported_in(func) if name in PRODUCT]
    assert not local, "function-local imports (hoist them; a cycle is a layering bug):\n" \
        + "\n".join(local)


def imported_in(node: ast.AST) -> list[tuple[ast.AST, str]]:
    """(import node, top-level package) for the imports inside `node`."""
    out: list[tuple[ast.AST, str]] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            out += [(sub, alias.name.split(".")[0]) for alias in sub.names]
        elif isinstance(sub, ast.ImportFrom) and sub.module:
            out.append((sub, sub.module.split(".")[0]))
    return out
