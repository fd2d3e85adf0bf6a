"""The rules of the package layout (docs/architecture.md), checked on the source: a violation names file and line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "plugins" / "datashare"


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO / "plugins").with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> str:
    """``datashare.<package>``; a top-level module (``datashare.exceptions``) is a package of its own."""
    return ".".join(module.split(".")[:2])


def _imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[int, str, str]]:
    """(line, module, name) of every ``from datashare… import name`` (and ``import datashare…``) in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "datashare":
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "datashare":
                    yield node.lineno, alias.name, ""


def test_the_engine_is_packages_by_concern() -> None:
    flat = sorted(p.name for p in ENGINE.glob("*.py"))
    assert flat == [
        "__init__.py",
        "__main__.py",
        "exceptions.py",
        "faults.py",
        "parquet.py",
        "sdk.py",
        "settings.py",
        "sqltext.py",
    ], "a new engine module belongs in the package of its concern (docs/architecture.md)"
    packages = sorted(p.parent.name for p in ENGINE.glob("*/__init__.py"))
    for package in packages:
        doc = ast.get_docstring(ast.parse((ENGINE / package / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"datashare.{package} says in its docstring what it owns"


def test_no_private_name_crosses_a_package() -> None:
    found = []
    for path in sorted(ENGINE.rglob("*.py")):
        here = _package(_module(path))
        for line, module, name in _imports(path):
            if name.startswith("_") and _package(module) != here:
                found.append(f"{path.relative_to(REPO)}:{line}: {module}.{name}")
    assert found == []


@pytest.mark.parametrize("folder", ["transforms", "units"])
def test_transforms_and_units_use_only_the_sdk(folder: str) -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted((REPO / folder).rglob("*.py"))
        for line, module, _ in _imports(path)
        if module != "datashare.sdk"
    ]
    assert found == []


def test_dag_files_import_only_the_factory_and_the_alert_callback_at_parse_time() -> None:
    allowed = {"datashare.orchestration.factory", "datashare.notify.alerts"}
    found = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in sorted((REPO / "dags").glob("*.py"))
        for line, module, _ in _imports(path, top_level_only=True)
        if module not in allowed
    ]
    assert found == []
