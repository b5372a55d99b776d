"""The KPI read model (models/tables.py OrderFacts, OrderStageTime, OrderLineRow): written in the transaction of the
step that changes an order, derived from its sources every time — so a late or repeated event leaves it exact,
and `rebuild` recomputes it all (a migration, a fix of a definition)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func
from sqlmodel import Session, col, delete, select

from core.db import unit_of_work
from domain.kpis import StageTime, stage_times
from models.order import Order
from models.status import TERMINAL_STATUSES, OrderStatus
from models.tables import (
    OrderEvent,
    OrderFacts,
    OrderLineRow,
    OrderStageTime,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
)
from services.billing.triggers import UNDELIVERED

_APPROVAL_WAITS = (OrderStatus.CREDIT_HOLD, OrderStatus.AWAITING_APPROVAL)


def add_lines(session: Session, order: Order) -> None:
    """The order's lines as rows (at registration)."""
    for line_no, line in enumerate(order.lines, start=1):
        session.add(
            OrderLineRow(
                order_no=order.order_no,
                line_no=line_no,
                sku=line.sku,
                qty=line.qty,
                unit_price=line.unit_price,
                amount=line.unit_price * line.qty,
            )
        )


def dispatch_promise(received_at: datetime, promise: timedelta) -> datetime:
    return received_at + promise


def record_first_allocation(session: Session, order_no: str, shortages: dict[str, int]) -> None:
    """What the order's first allocation attempt could not find, per line (later attempts change nothing). A
    shortage of a SKU on two lines is put on the later line first (the earlier one is filled first)."""
    lines = session.exec(
        select(OrderLineRow).where(OrderLineRow.order_no == order_no).order_by(col(OrderLineRow.line_no).desc())
    ).all()
    if not lines or any(line.short_first is not None for line in lines):
        return
    left = dict(shortages)
    for line in lines:
        short = min(line.qty, left.get(line.sku, 0))
        left[line.sku] = left.get(line.sku, 0) - short
        line.short_first = short
        session.add(line)


def refresh(session: Session, order_no: str, zone: ZoneInfo | None) -> None:
    """Recompute the order's facts and stage times from its order row, events, lines, reservations and parcels.
    `zone` (the business's, for its day) is needed only for an order without facts yet; without it such an order
    is left to `rebuild_missing`."""
    session.flush()  # this step's own writes (the event, the reservations) count
    # One refresh of an order at a time (a carrier's news and the order's next step may race, on Postgres): the
    # second waits, then reads what the first committed, so the last one written saw everything.
    order = session.exec(select(SalesOrder).where(SalesOrder.order_no == order_no).with_for_update()).first()
    existing = session.get(OrderFacts, order_no)
    if order is None or (existing is None and zone is None):
        return
    events = [
        (status, at)
        for status, at in session.exec(
            select(OrderEvent.status, OrderEvent.at)
            .where(OrderEvent.order_no == order_no)
            .order_by(col(OrderEvent.seq))
        ).all()
    ]
    lines = session.exec(select(OrderLineRow).where(OrderLineRow.order_no == order_no)).all()
    shipped = session.exec(
        select(func.coalesce(func.sum(Reservation.qty), 0)).where(
            Reservation.order_no == order_no, Reservation.state == ReservationState.CONSUMED
        )
    ).one()
    parcels = session.exec(select(Shipment.status).where(Shipment.order_no == order_no)).all()
    facts, times = derive(order, events, lines, int(shipped), parcels, existing, zone)
    session.add(facts)
    session.exec(delete(OrderStageTime).where(col(OrderStageTime.order_no) == order_no))
    for stage, spent in times.items():
        session.add(
            OrderStageTime(
                order_no=order_no,
                stage=stage,
                seconds=spent.seconds,
                entered_at=spent.entered_at,
                left_at=spent.left_at,
            )
        )


def derive(
    order: SalesOrder,
    events: Sequence[tuple[str, datetime]],
    lines: Sequence[OrderLineRow],
    shipped: int,
    parcels: Sequence[str],
    existing: OrderFacts | None,
    zone: ZoneInfo | None,
) -> tuple[OrderFacts, dict[str, StageTime]]:
    """An order's facts and stage times from its sources: the order row, its (status, at) events in sequence, its
    lines, the units shipped (consumed reservations) and its parcels' statuses. `existing` is updated in place
    (its business day stays as first derived); without it `zone` gives the day. Pure: the generator of
    bench/cockpit.py derives its million orders with it too."""
    first_at: dict[str, datetime] = {}
    for status, at in events:
        first_at.setdefault(status, at)
    times = stage_times(events)
    waits = [times[s] for s in _APPROVAL_WAITS if s in times]
    received_at = order.created_at
    completed_at = first_at.get(OrderStatus.COMPLETED)
    ended = [at for status, at in events if status in TERMINAL_STATUSES]
    tried = [line.short_first for line in lines if line.short_first is not None]
    facts = existing or OrderFacts(
        order_no=order.order_no, received_at=received_at, received_day=received_at.astimezone(zone).date(),
        channel=order.channel, sales_rep=order.sales_rep, customer_id=order.customer_id, currency=order.currency,
        total=order.total, status=order.status, status_since=received_at, lines=0, units=0,
    )  # fmt: skip
    facts.region = str(order.payload.get("ship_to", {}).get("region", ""))[:64]
    facts.status = order.status
    facts.status_since = _current_since(events) or received_at
    facts.lines = len(lines)
    facts.units = sum(line.qty for line in lines)
    facts.units_shipped = shipped
    facts.lines_short_first = sum(1 for s in tried if s > 0) if len(tried) == len(lines) and lines else None
    facts.units_short_first = sum(tried) if len(tried) == len(lines) and lines else None
    facts.backordered = OrderStatus.BACKORDERED in first_at
    facts.returned = any(status in UNDELIVERED for status in parcels)
    facts.dispatch_by = order.dispatch_by
    facts.approved_at = first_at.get(OrderStatus.APPROVED)
    facts.dispatched_at = first_at.get(OrderStatus.DISPATCHED)
    facts.delivered_at = first_at.get(OrderStatus.DELIVERED)
    facts.completed_at = completed_at
    facts.ended_at = ended[0] if ended else None
    facts.cycle_seconds = max((completed_at - received_at).total_seconds(), 0.0) if completed_at else None
    closed = [w for w in waits if w.left_at is not None]
    facts.approval_wait_seconds = sum(w.seconds for w in closed) if closed and len(closed) == len(waits) else None
    facts.approval_ended_at = (
        max(w.left_at for w in closed if w.left_at) if facts.approval_wait_seconds is not None else None
    )
    return facts, times


def _current_since(events: Sequence[tuple[str, datetime]]) -> datetime | None:
    """When the order entered the status it is in: an event of the status it is already in (a first parcel of
    several left, a payment recorded) continues the visit, as in domain/kpis.py `stage_times`."""
    since = None
    for status, at in reversed(events):
        if status != events[-1][0]:
            break
        since = at
    return since


def rebuild(engine: Engine, zone: ZoneInfo, *, only_missing: bool = False, batch: int = 500) -> int:
    """Recompute every order's facts — or, `only_missing`, those of orders that have none (after the migration
    that added them; the worker does it at start-up) — in transactions of `batch` orders; returns how many."""
    done = 0
    last = ""
    while True:
        with unit_of_work(engine) as session:
            query = select(SalesOrder.order_no).where(SalesOrder.order_no > last)
            if only_missing:
                query = query.outerjoin(OrderFacts, col(OrderFacts.order_no) == col(SalesOrder.order_no)).where(
                    col(OrderFacts.order_no).is_(None)
                )
            numbers = session.exec(query.order_by(col(SalesOrder.order_no)).limit(batch)).all()
            for order_no in numbers:
                refresh(session, order_no, zone)
        if not numbers:
            return done
        done += len(numbers)
        last = numbers[-1]
