"""The warehouse's own steps on a pick list: marking it picked (dispatching it is an order command)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from models.tables import PickList


def mark_picked(session: Session, pick_list_id: int, user: str, now: datetime) -> bool:
    """In the caller's unit of work: the list's goods are picked. False when it is no longer open (voided because
    the order was cancelled, or shipped): nothing changes. Marking it twice keeps the first picker."""
    result = session.exec(
        update(PickList)
        .where(col(PickList.id) == pick_list_id, col(PickList.state) == "issued", col(PickList.picked_at).is_(None))
        .values(picked_by=user, picked_at=now)
    )
    if result.rowcount:
        return True
    found = session.get(PickList, pick_list_id)
    return found is not None and found.state == "issued"
