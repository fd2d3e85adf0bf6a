"""A process starts from compiled byte-code: setup and the image compile it once, so no run pays for it.

Without ``.pyc`` files every process (``datashare run``, each Airflow task, each test's child) compiles
the ~2,200 modules it imports: about 4 s per process on the bench machine, measured with ``cProfile``
(``builtins.compile`` under ``importlib``), and more than the stages' own work on a small release. Python
writes ``.pyc`` files on first import, but not where ``PYTHONDONTWRITEBYTECODE`` is set or site-packages
is read-only (common in images), so ``make setup`` and the Dockerfile compile at install time.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("great_expectations", "pyarrow", "sqlalchemy", "airflow", "pandas", "fastapi", "duckdb")


@pytest.mark.parametrize("name", HEAVY)
def test_installed_packages_carry_compiled_byte_code(name: str) -> None:
    module = importlib.import_module(name)
    source = Path(module.__file__ or "")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert cached.is_file(), f"{name}: no byte-code at {cached}; run `make setup` (uv pip install --compile-bytecode)"
    deeper = sorted(source.parent.rglob("*.py"))[:50]
    missing = [p for p in deeper if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert not missing, f"{name}: {len(missing)} of the first 50 modules lack byte-code, e.g. {missing[0]}"


def test_setup_and_image_compile_byte_code() -> None:
    makefile = (REPO / "Makefile").read_text()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--compile-bytecode" in makefile and "compileall" in makefile
    assert "--compile-bytecode" in dockerfile and "compileall" in dockerfile
