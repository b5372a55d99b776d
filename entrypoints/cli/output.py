"""CLI output: JSON when piped (or --json), readable tables on a terminal; errors as one line on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

_state = {"json": False}
console = Console()
errors = Console(stderr=True)


def force_json(enabled: bool) -> None:
    _state["json"] = enabled


def wants_json() -> bool:
    return _state["json"] or not sys.stdout.isatty()


def emit(data: Any, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print `data`: JSON for machines; a table (lists with `columns`) or pretty JSON for people."""
    if wants_json():
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        return
    if columns and isinstance(data, list):
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in data:
            table.add_row(*(str(row.get(column, "")) for column in columns))
        console.print(table)
        return
    console.print_json(json.dumps(data, ensure_ascii=False, default=str))


def fail(message: str) -> None:
    errors.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
