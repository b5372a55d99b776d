"""Pydantic's validation errors of a rules file, said the way the file's author reads it: by rule name and field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def describe(exc: ValidationError, raw: Any, list_key: str) -> str:
    """One line per error: `rule 'name' → field.path: message` (rule by name when it has one, else by number)."""
    items = raw.get(list_key) if isinstance(raw, dict) else None
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(part) for part in loc) or "(file)"
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
            index = loc[1]
            item = items[index] if isinstance(items, list) and index < len(items) else None
            name = item.get("name") if isinstance(item, dict) else None
            who = f"rule {name!r}" if isinstance(name, str) and name else f"rule #{index + 1}"
            field = ".".join(str(part) for part in loc[2:]) or "(rule)"
            where = f"{who} → {field}"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
