"""How long an order may stay in each stage before ops should look at it: the waits on people (an approver, a
payment) have their own deadlines and reminders in the workflow, so they are not here."""

from __future__ import annotations

from datetime import datetime, timedelta

from models.status import OrderStatus

STAGE_SLA: dict[OrderStatus, timedelta] = {
    OrderStatus.RECEIVED: timedelta(minutes=30),  # validation, review and credit are machine steps
    OrderStatus.APPROVED: timedelta(hours=1),  # allocation should follow at once
    OrderStatus.ALLOCATED: timedelta(hours=1),  # the pick list should be issued at once
    OrderStatus.PICKING: timedelta(hours=24),  # picked, packed and handed to the carrier within a working day
    OrderStatus.DISPATCHED: timedelta(hours=24),  # the carrier's first scan
    OrderStatus.IN_TRANSIT: timedelta(days=5),
    OrderStatus.OUT_FOR_DELIVERY: timedelta(days=1),
}


def sla_breach(status: str, since: datetime, now: datetime) -> timedelta | None:
    """How far past its stage's SLA an order in `status` since `since` is at `now`; None when within it."""
    try:
        allowed = STAGE_SLA.get(OrderStatus(status))
    except ValueError:
        return None
    if allowed is None or now - since <= allowed:
        return None
    return now - since - allowed
