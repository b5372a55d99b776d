"""Staff notices read in the console: marking one read (the inbox lists them, services/queries/inbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.tables import Notification


def mark_read(session: Session, user: str, notice_id: int, now: datetime) -> bool:
    """In the caller's unit of work; False when the notice is not this user's (nothing changes)."""
    result = session.exec(
        update(Notification)
        .where(
            col(Notification.id) == notice_id,
            col(Notification.channel) == "internal",
            col(Notification.recipient) == user,
            col(Notification.read_at).is_(None),
        )
        .values(read_at=now)
    )
    return bool(result.rowcount) or (
        session.exec(
            select(Notification.id).where(Notification.id == notice_id, Notification.recipient == user)
        ).first()
        is not None
    )
