"""The dependency direction of DESIGN.md, checked on every module's imports (AST, no import)."""

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
