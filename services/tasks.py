"""To-dos (tasks) that automations open for a role or a user: listed in the holder's console inbox, done there."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from models.tables import Task

INBOX_TASKS = 50


def open_tasks(session: Session, user: str, role: str, *, limit: int = INBOX_TASKS) -> list[Task]:
    """Open to-dos for this user or their role, the soonest due first (undated ones after), then oldest."""
    query = (
        select(Task)
        .where(Task.state == "open", or_(col(Task.user) == user, col(Task.role) == role))
        .order_by(col(Task.due_at).is_(None), col(Task.due_at), col(Task.created_at), col(Task.id))
        .limit(limit)
    )
    return list(session.exec(query).all())


def mark_done(session: Session, task_id: int, *, user: str, role: str, now: datetime) -> bool:
    """Done by whoever holds it (the user, or anyone with the role); False when it is not theirs or not open."""
    result = session.exec(
        update(Task)
        .where(
            col(Task.id) == task_id,
            col(Task.state) == "open",
            or_(col(Task.user) == user, col(Task.role) == role),
        )
        .values(state="done", done_by=user, done_at=now)
    )
    return bool(result.rowcount)
