"""The automation rules in force: every saved version kept, the highest one of each name in force.

A save validates the whole rule first (rules/automation.py parse_rule): a bad rule raises AutomationError naming
the rule and the field, and nothing is written, so the good version stays in force. Saving a definition equal to
the one in force adds no version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from core.db import read_only, unit_of_work
from models.tables import AutomationRule
from rules.automation import Automation, AutomationError, parse_rule, parse_set


@dataclass(frozen=True)
class StoredRule:
    rule: Automation
    version: int
    saved_by: str
    saved_at: datetime
    note: str


def read_file(path: Path) -> list[Automation]:
    """A YAML automation set, validated whole (`orderflow automations check`)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AutomationError(f"cannot read automations file {path}: {exc}") from exc
    return list(parse_set(raw, source=str(path)).automations)


def current(session: Session) -> list[StoredRule]:
    """The version in force of every rule, by name."""
    latest = (
        select(AutomationRule.name, func.max(AutomationRule.version).label("version"))
        .group_by(col(AutomationRule.name))
        .subquery()
    )
    rows = session.exec(
        select(AutomationRule)
        .join(latest, (col(AutomationRule.name) == latest.c.name) & (col(AutomationRule.version) == latest.c.version))
        .order_by(col(AutomationRule.name))
    ).all()
    return [_stored(row) for row in rows]


def stamp(session: Session) -> tuple[int, int]:
    """Changes whenever any rule is saved: (versions stored, highest version) — the dispatcher's cache key."""
    count, highest = session.exec(
        select(func.count(), func.coalesce(func.max(AutomationRule.version), 0)).select_from(AutomationRule)
    ).one()
    return int(count), int(highest)


def version_of(session: Session, name: str, version: int) -> StoredRule | None:
    row = session.get(AutomationRule, (name, version))
    return None if row is None else _stored(row)


def history(session: Session, name: str) -> list[StoredRule]:
    rows = session.exec(
        select(AutomationRule).where(AutomationRule.name == name).order_by(col(AutomationRule.version).desc())
    ).all()
    return [_stored(row) for row in rows]


def save(session: Session, raw: dict[str, Any], *, by: str, note: str, now: datetime) -> StoredRule:
    """Validate and store `raw` as the rule's next version (in the caller's unit of work); an unchanged
    definition returns the version in force."""
    rule = parse_rule(raw)
    latest = session.exec(
        select(AutomationRule).where(AutomationRule.name == rule.name).order_by(col(AutomationRule.version).desc())
    ).first()
    if latest is not None and latest.definition == rule.definition():
        return _stored(latest)
    row = AutomationRule(
        name=rule.name,
        version=(latest.version if latest is not None else 0) + 1,
        definition=rule.definition(),
        enabled=rule.enabled,
        owner=rule.owner,
        saved_by=by,
        saved_at=now,
        note=note[:500],
    )
    session.add(row)
    session.flush()
    return _stored(row)


def set_enabled(session: Session, name: str, enabled: bool, *, by: str, now: datetime) -> StoredRule:
    latest = session.exec(
        select(AutomationRule).where(AutomationRule.name == name).order_by(col(AutomationRule.version).desc())
    ).first()
    if latest is None:
        raise AutomationError(f"no automation named {name!r}")
    definition = {**latest.definition, "enabled": enabled}
    return save(session, definition, by=by, note="enabled" if enabled else "disabled", now=now)


def load_file(engine: Engine, path: Path, *, by: str, now: datetime, only_new: bool = False) -> list[StoredRule]:
    """Store every rule of the file as a new version (or, `only_new`, only rules not stored yet: the worker
    seeds the defaults this way and never overrides what people changed). All or nothing."""
    rules = read_file(path)
    saved = []
    with unit_of_work(engine) as session:
        known = set(session.exec(select(AutomationRule.name).distinct()))
        for rule in rules:
            if only_new and rule.name in known:
                continue
            saved.append(save(session, rule.definition(), by=by, note=f"loaded from {path.name}", now=now))
    return saved


def in_force(engine: Engine) -> list[StoredRule]:
    with read_only(engine) as session:
        return current(session)


def _stored(row: AutomationRule) -> StoredRule:
    return StoredRule(parse_rule(row.definition), row.version, row.saved_by, row.saved_at, row.note)
