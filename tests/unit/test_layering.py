"""Dependencies run one way: benchmarks may use tests/support, tests never use benchmarks or each other,
and nothing edits ``sys.path`` (pytest.ini's ``pythonpath``, the install and the image's PYTHONPATH do that)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ops.compose import REPO

SOURCE_FOLDERS = ("client", "ops", "tests", "benchmarks")


def python_files() -> list[Path]:
    return sorted(
        path
        for folder in SOURCE_FOLDERS
        for path in (REPO / folder).rglob("*.py")
        if ".venv" not in path.parts and "build" not in path.parts
    )


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def sys_path_edits(path: Path) -> list[int]:
    """Lines that change ``sys.path`` (a call on it, or an assignment to it)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        target = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", "") == "sys":
            lines.append(node.lineno)
    return sorted(lines)


def test_there_are_files_to_check() -> None:
    assert len(python_files()) > 30


@pytest.mark.parametrize("path", python_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_sys_path_edits(path: Path) -> None:
    assert sys_path_edits(path) == [], f"{path.relative_to(REPO)} edits sys.path"


def test_the_checker_finds_a_sys_path_edit(tmp_path: Path) -> None:
    source = tmp_path / "edit.py"
    source.write_text("import sys\nsys.path.insert(0, 'x')\nsys.path = []\nsys.path += ['y']\nprint(sys.argv)\n")
    assert sys_path_edits(source) == [2, 3, 4]


def test_tests_import_neither_benchmarks_nor_other_test_modules() -> None:
    wrong = {}
    for path in python_files():
        if path.relative_to(REPO).parts[0] != "tests":
            continue
        bad = {
            module
            for module in imported_modules(path)
            if module.split(".")[0] == "benchmarks"
            or (module.startswith("tests.") and not module.startswith("tests.support"))
        }
        if bad:
            wrong[str(path.relative_to(REPO))] = sorted(bad)
    assert wrong == {}, "move what they share into tests/support/"


def test_nothing_imports_the_entrypoint_but_its_own_tests() -> None:
    """ops/run_vllm_server.py is a thin main over ops/engine: ops imports the package, never the entrypoint."""
    allowed = {"tests/unit/test_entrypoint_memory.py", "tests/unit/test_ops_one_line_errors.py"}
    importers = set()
    for path in python_files():
        tree = ast.parse(path.read_text(), str(path))
        names = {
            f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        if "ops.run_vllm_server" in imported_modules(path) | names:
            importers.add(str(path.relative_to(REPO)))
    assert importers <= allowed, sorted(importers - allowed)
    assert not (REPO / "client" / "arena_vllm" / "memory_plan.py").exists()  # the planner lives in ops/engine


def test_the_settings_import_nothing_from_the_backends() -> None:
    """Arrows run down: backends -> config -> tool_shapes; the settings never reach back up into the backends."""
    package = REPO / "client" / "arena_vllm"
    upward = {module for module in imported_modules(package / "config.py") if module.startswith("arena_vllm.backends")}
    assert upward == set()
    below = {module for module in imported_modules(package / "tool_shapes.py") if module.startswith("arena_vllm")}
    assert below == set(), "tool_shapes is the ground floor: it imports nothing of the package"
