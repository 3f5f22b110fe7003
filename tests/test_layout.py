"""The shape of the code base that reviews rely on: production never imports development
tooling, and ClickHouse has one path."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
TOOLING = PACKAGE / "devstack"
#: the command line dispatches to the tooling's commands (dev, bench, kafka, clickhouse) lazily
COMPOSITION_ROOT = PACKAGE / "cli.py"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_production_modules_never_import_the_development_tooling() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name for name in _imported_modules(path) if name.startswith("pipeline.devstack")
        )
        for path in PACKAGE.rglob("*.py")
        if TOOLING not in path.parents and path != COMPOSITION_ROOT
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_composition_root_imports_tooling_only_inside_its_commands() -> None:
    tree = ast.parse(COMPOSITION_ROOT.read_text())
    top_level = {
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not any(name.startswith("pipeline.devstack") for name in top_level)


def test_clickhouse_has_one_path_and_no_in_process_engine_outside_the_tooling() -> None:
    for path in PACKAGE.rglob("*.py"):
        if TOOLING in path.parents:
            continue
        modules = _imported_modules(path)
        assert not any(name == "chdb" or name.startswith("chdb.") for name in modules), path
    assert not (PACKAGE / "store" / "relay.py").exists()
    assert not (PACKAGE / "store" / "embedded.py").exists()
