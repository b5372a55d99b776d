"""Pydantic's validation errors of a rules file, said the way the file's author reads it: by rule name and field."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def describe(exc: ValidationError, raw: Any, list_key: str | None) -> str:
    """One line per error: `rule 'name' → field.path: message` (rule by name when it has one, else by number).
    `list_key`: the file's list of rules; None when `raw` is one rule."""
    items = raw.get(list_key) if isinstance(raw, dict) and list_key else None
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if list_key is None:
            lines.append(_located(_who(raw, None), loc, message))
        elif len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
            item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
            lines.append(_located(_who(item, loc[1]), loc[2:], message))
        else:
            lines.append(f"{'.'.join(str(part) for part in loc) or '(file)'}: {message}")
    return "; ".join(lines)


def _who(item: Any, index: int | None) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if isinstance(name, str) and name:
        return f"rule {name!r}"
    return "the rule" if index is None else f"rule #{index + 1}"


def _located(who: str, loc: list[Any], message: str) -> str:
    # A check of the whole rule says where itself ("branches.0.if: …").
    return f"{who} → {'.'.join(str(part) for part in loc)}: {message}" if loc else f"{who} → {message}"
