"""The automation event outbox: what happened, written in the same transaction as the change itself, so an
event exists exactly when its change committed; `key` makes a retried step (or a re-delivered push) write it
once. The dispatcher (dispatcher.py) reads what is not handled yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from models.tables import AutomationEvent
from rules.automation import EventKind


def record_event(
    session: Session,
    kind: EventKind,
    subject: str,
    key: str,
    data: Mapping[str, Any],
    at: datetime,
    *,
    caused_by: Sequence[str] = (),
) -> None:
    """Add the event to the caller's unit of work unless an event with this key is already there."""
    if session.exec(select(AutomationEvent.id).where(AutomationEvent.key == key)).first() is not None:
        return
    session.add(
        AutomationEvent(key=key, kind=kind.value, subject=subject, data=dict(data), caused_by=list(caused_by), at=at)
    )
