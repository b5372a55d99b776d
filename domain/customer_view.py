"""What a customer is told about their order: a few plain stages, never our internal states (a credit hold or an
approval level is staff business), and when a parcel not yet delivered should arrive."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from models.status import OrderStatus, TrackingStatus


class CustomerStage(StrEnum):
    RECEIVED = "received"  # we have it and are checking it
    AWAITING_PAYMENT = "awaiting_payment"
    PREPARING = "preparing"  # accepted, being picked and packed
    ON_ITS_WAY = "on_its_way"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERY_PROBLEM = "delivery_problem"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


_STAGES: dict[OrderStatus, CustomerStage] = {
    OrderStatus.RECEIVED: CustomerStage.RECEIVED,
    OrderStatus.CREDIT_HOLD: CustomerStage.RECEIVED,
    OrderStatus.AWAITING_APPROVAL: CustomerStage.RECEIVED,
    OrderStatus.AWAITING_PAYMENT: CustomerStage.AWAITING_PAYMENT,
    OrderStatus.APPROVED: CustomerStage.PREPARING,
    OrderStatus.BACKORDERED: CustomerStage.PREPARING,
    OrderStatus.ALLOCATED: CustomerStage.PREPARING,
    OrderStatus.PICKING: CustomerStage.PREPARING,
    OrderStatus.DISPATCHED: CustomerStage.ON_ITS_WAY,
    OrderStatus.IN_TRANSIT: CustomerStage.ON_ITS_WAY,
    OrderStatus.OUT_FOR_DELIVERY: CustomerStage.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERY_EXCEPTION: CustomerStage.DELIVERY_PROBLEM,
    OrderStatus.DELIVERED: CustomerStage.DELIVERED,
    OrderStatus.COMPLETED: CustomerStage.DELIVERED,
    OrderStatus.REJECTED: CustomerStage.CANCELLED,
    OrderStatus.CANCELLED: CustomerStage.CANCELLED,
    OrderStatus.FAILED: CustomerStage.CANCELLED,
}

# The parcel has reached its end: no expected delivery to show.
PARCEL_DONE = frozenset(
    {TrackingStatus.DELIVERED, TrackingStatus.RETURNED, TrackingStatus.REFUSED, TrackingStatus.EXPIRED}
)


def customer_stage(status: str) -> CustomerStage:
    try:
        return _STAGES[OrderStatus(status)]
    except ValueError:
        return CustomerStage.RECEIVED


def expected_delivery(
    dispatched_at: datetime, status: str, latest_event: datetime | None, transit: timedelta
) -> datetime | None:
    """When a parcel on its way should arrive: `transit` after dispatch, and never before its latest news (a
    late parcel is expected a day after it was last seen, not in the past). None once it has reached its end."""
    if status in PARCEL_DONE:
        return None
    expected = dispatched_at + transit
    if latest_event is not None and expected <= latest_event:
        expected = latest_event + timedelta(days=1)
    return expected
