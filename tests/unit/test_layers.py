"""The picture in docs/architecture.md stays true: each folder is one layer and imports only the layers below it.

import-linter checks the layers and that workflows and pure decisions reach no I/O library, even indirectly
(pyproject.toml [tool.importlinter]); the allow-lists below pin what workflows/ and domain/ may name at all.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

from core.config import PROJECT_ROOT

STDLIB = frozenset(sys.stdlib_module_names)
# What each bottom room may import besides the standard library (top-level names).
MAY_IMPORT = {
    "models": {"models", "pydantic", "sqlalchemy", "sqlmodel"},
    "domain": {"domain", "models"},
    "workflows": {"workflows", "domain", "models", "temporalio", "pydantic"},
}


def test_the_layer_contracts_hold() -> None:
    assert lint_imports(config_filename=str(PROJECT_ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots - STDLIB - {"__future__"}


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_bottom_rooms_import_only_what_they_may(room: str) -> None:
    files = sorted((PROJECT_ROOT / room).rglob("*.py"))
    assert files
    strays = {
        f"{path.relative_to(PROJECT_ROOT)}: {sorted(extra)}"
        for path in files
        if (extra := _imported_roots(path) - MAY_IMPORT[room])
    }
    assert strays == set()
