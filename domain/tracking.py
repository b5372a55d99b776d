"""From parcel tracking statuses to the order's status; carriers are not monotonic, so progress is ranked."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from models.status import OrderStatus, TrackingStatus

# How far along a parcel is. Exceptions rank with in-transit: a recovered parcel moves on from them.
PROGRESS_RANK: dict[TrackingStatus, int] = {
    TrackingStatus.PENDING: 0,
    TrackingStatus.INFO_RECEIVED: 1,
    TrackingStatus.PICKED_UP: 2,
    TrackingStatus.IN_TRANSIT: 3,
    TrackingStatus.ATTEMPT_FAILED: 3,
    TrackingStatus.EXCEPTION: 3,
    TrackingStatus.REFUSED: 3,
    TrackingStatus.RETURNING: 3,
    TrackingStatus.OUT_FOR_DELIVERY: 4,
    TrackingStatus.AVAILABLE_FOR_PICKUP: 4,
    TrackingStatus.DELIVERED: 5,
    TrackingStatus.RETURNED: 5,
    TrackingStatus.EXPIRED: 5,
}

EXCEPTION_STATUSES = frozenset(
    {
        TrackingStatus.ATTEMPT_FAILED,
        TrackingStatus.EXCEPTION,
        TrackingStatus.REFUSED,
        TrackingStatus.RETURNING,
        TrackingStatus.RETURNED,
        TrackingStatus.EXPIRED,
    }
)
# Tracking of a parcel ends here.
FINAL_TRACKING_STATUSES = frozenset({TrackingStatus.DELIVERED, TrackingStatus.RETURNED, TrackingStatus.EXPIRED})

ORDER_STATUS_FOR_PARCEL: dict[TrackingStatus, OrderStatus] = {
    TrackingStatus.PENDING: OrderStatus.DISPATCHED,
    TrackingStatus.INFO_RECEIVED: OrderStatus.DISPATCHED,
    TrackingStatus.PICKED_UP: OrderStatus.IN_TRANSIT,
    TrackingStatus.IN_TRANSIT: OrderStatus.IN_TRANSIT,
    TrackingStatus.OUT_FOR_DELIVERY: OrderStatus.OUT_FOR_DELIVERY,
    TrackingStatus.AVAILABLE_FOR_PICKUP: OrderStatus.OUT_FOR_DELIVERY,
    TrackingStatus.DELIVERED: OrderStatus.DELIVERED,
}

ORDER_PROGRESS = [
    OrderStatus.DISPATCHED,
    OrderStatus.IN_TRANSIT,
    OrderStatus.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERED,
]


# Trouble on the way: always news when a carrier reports it, whatever the parcel's progress so far (a failed
# attempt or a refusal happens at the door, after OUT_FOR_DELIVERY).
TROUBLE_STATUSES = frozenset(
    {TrackingStatus.ATTEMPT_FAILED, TrackingStatus.EXCEPTION, TrackingStatus.REFUSED, TrackingStatus.RETURNING}
)


# Once a parcel is refused or on its way back, only the end of that trip counts (scans of the trip back say
# "in transit", and its "delivered" is the sender signing for the return).
HOMEWARD_STATUSES = frozenset({TrackingStatus.REFUSED, TrackingStatus.RETURNING})


def is_newer(current: TrackingStatus, candidate: TrackingStatus) -> bool:
    """Should `candidate` replace `current`? Forward moves (or a change at the same rank) and trouble count;
    a stale scan that would move the parcel back does not."""
    if candidate == current or current in FINAL_TRACKING_STATUSES:
        return False  # a signed-for (or returned) parcel stays so, whatever a carrier says later
    if current in HOMEWARD_STATUSES:
        return candidate in (TrackingStatus.RETURNING, TrackingStatus.RETURNED, TrackingStatus.DELIVERED)
    if candidate in TROUBLE_STATUSES:
        return True
    if current in TROUBLE_STATUSES:  # moving again after trouble: anything from in-transit on is recovery
        return PROGRESS_RANK[candidate] >= PROGRESS_RANK[TrackingStatus.IN_TRANSIT]
    return PROGRESS_RANK[candidate] >= PROGRESS_RANK[current]


def next_status(
    current: TrackingStatus,
    candidate: TrackingStatus,
    *,
    last_event_at: datetime | None = None,
    candidate_at: datetime | None = None,
) -> TrackingStatus | None:
    """The parcel's status after a carrier says `candidate` (its newest event, at `candidate_at`), or None when
    that is no news. Trouble older than the last event we took is a late re-send, not news (a delayed "attempt
    failed" must not undo the next day's delivery run); "delivered" on the way back is the return arriving."""
    if not is_newer(current, candidate):
        return None
    stale = last_event_at is not None and candidate_at is not None and candidate_at < last_event_at
    if candidate in TROUBLE_STATUSES and stale:
        return None
    if current in HOMEWARD_STATUSES and candidate == TrackingStatus.DELIVERED:
        return TrackingStatus.RETURNED
    return candidate


def order_status_for(parcels: Iterable[TrackingStatus]) -> OrderStatus:
    """An order is as far along as its least advanced parcel; any parcel in trouble flags the order."""
    statuses = list(parcels)
    if not statuses:
        return OrderStatus.DISPATCHED
    if any(status in EXCEPTION_STATUSES for status in statuses):
        return OrderStatus.DELIVERY_EXCEPTION
    return min((ORDER_STATUS_FOR_PARCEL[status] for status in statuses), key=ORDER_PROGRESS.index)
