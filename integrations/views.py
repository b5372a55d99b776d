"""Read-model views for people and integrations: the order view, inventory, products, customers, KPIs."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.status import NEVER_BILLED, OrderStatus
from models.tables import (
    ApprovalRecord,
    Customer,
    OrderEvent,
    Product,
    PurchaseRequisition,
    RequisitionState,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
    StockLot,
    TrackingEvent,
    Warehouse,
    utcnow,
)


class NotFound(LookupError):
    pass


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_view(session: Session, order_no: str) -> dict[str, Any]:
    order = session.get(SalesOrder, order_no)
    if order is None:
        raise NotFound(f"unknown order {order_no}")
    events = session.exec(select(OrderEvent).where(OrderEvent.order_no == order_no).order_by(col(OrderEvent.seq))).all()
    approvals = session.exec(
        select(ApprovalRecord).where(ApprovalRecord.order_no == order_no).order_by(col(ApprovalRecord.id))
    ).all()
    reservations = session.exec(
        select(Reservation, StockLot)
        .join(StockLot, col(StockLot.id) == col(Reservation.lot_id))
        .where(Reservation.order_no == order_no, Reservation.state != ReservationState.RELEASED)
        .order_by(col(Reservation.line_no), col(Reservation.id))
    ).all()
    shipments = session.exec(select(Shipment).where(Shipment.order_no == order_no).order_by(col(Shipment.id))).all()
    return {
        "order_no": order.order_no,
        "status": order.status,
        "customer_id": order.customer_id,
        "channel": order.channel,
        "sales_rep": order.sales_rep,
        "currency": order.currency,
        "total": str(order.total),
        "paid": order.paid,
        "reasons": order.reasons,
        "lines": [
            {"line": i, "sku": line["sku"], "qty": line["qty"], "unit_price": line["unit_price"]}
            for i, line in enumerate(order.payload.get("lines", []), start=1)
        ],
        "approvals": [
            {
                "level": a.level,
                "role": a.role,
                "by": a.by,
                "decision": a.decision,
                "at": _iso(a.at),
                "comment": a.comment,
                **({} if a.accepted else {"refused": a.refusal_reason}),
            }
            for a in approvals
        ],
        "allocations": [
            {"line": r.line_no, "sku": r.sku, "warehouse": r.warehouse, "lot": lot.lot, "qty": r.qty, "state": r.state}
            for r, lot in reservations
        ],
        "shipments": [_shipment_view(session, s) for s in shipments],
        "timeline": [{"status": e.status, "at": _iso(e.at), "detail": e.detail} for e in events],
    }


def _shipment_view(session: Session, shipment: Shipment) -> dict[str, Any]:
    events = session.exec(
        select(TrackingEvent)
        .where(TrackingEvent.carrier == shipment.carrier, TrackingEvent.tracking_no == shipment.tracking_no)
        .order_by(col(TrackingEvent.at), col(TrackingEvent.id))
    ).all()
    return {
        "warehouse": shipment.warehouse,
        "carrier": shipment.carrier,
        "tracking_no": shipment.tracking_no,
        "status": shipment.status,
        "signed_by": shipment.signed_by,
        "signed_at": _iso(shipment.signed_at),
        "events": [
            {"status": e.status, "at": _iso(e.at), "location": e.location, "description": e.description} for e in events
        ],
    }


def inventory_view(session: Session, sku: str) -> dict[str, Any]:
    product = session.get(Product, sku)
    if product is None:
        raise NotFound(f"unknown SKU {sku}")
    on_hand: dict[str, int] = defaultdict(int)
    expired: dict[str, int] = defaultdict(int)  # on hand but past its expiry: never promised
    now = utcnow()
    for lot in session.exec(select(StockLot).where(StockLot.sku == sku)).all():
        on_hand[lot.warehouse] += lot.on_hand
        if lot.expires_at is not None and lot.expires_at <= now:
            expired[lot.warehouse] += lot.on_hand
    reserved = dict(
        session.exec(
            select(Reservation.warehouse, func.sum(Reservation.qty))
            .where(Reservation.sku == sku, Reservation.state == ReservationState.LOCKED)
            .group_by(Reservation.warehouse)
        ).all()
    )
    # Shown apart: what open purchase requisitions will bring (not promised to anyone yet).
    incoming = dict(
        session.exec(
            select(PurchaseRequisition.warehouse, func.sum(PurchaseRequisition.qty))
            .where(PurchaseRequisition.sku == sku, PurchaseRequisition.state == RequisitionState.OPEN)
            .group_by(PurchaseRequisition.warehouse)
        ).all()
    )
    warehouses = []
    for wh in session.exec(select(Warehouse).order_by(col(Warehouse.code))).all():
        have, held, stale = on_hand[wh.code], int(reserved.get(wh.code, 0)), expired[wh.code]
        warehouses.append(
            {
                "warehouse": wh.code,
                "region": wh.region,
                "on_hand": have,
                "reserved": held,
                "available": have - stale - held,
                "expired": stale,
                "incoming": int(incoming.get(wh.code, 0)),
            }
        )
    return {
        "sku": sku,
        "name": product.name,
        "warehouses": warehouses,
        "on_hand": sum(w["on_hand"] for w in warehouses),
        "reserved": sum(w["reserved"] for w in warehouses),
        "available": sum(w["available"] for w in warehouses),
        "incoming": sum(w["incoming"] for w in warehouses),
    }


def products_view(session: Session) -> list[dict[str, Any]]:
    now = utcnow()
    on_hand: dict[str, int] = defaultdict(int)  # promisable stock: expired lots left out, as in inventory_view
    for sku, qty, expires_at in session.exec(select(StockLot.sku, StockLot.on_hand, StockLot.expires_at)).all():
        if expires_at is None or expires_at > now:
            on_hand[sku] += qty
    reserved = dict(
        session.exec(
            select(Reservation.sku, func.sum(Reservation.qty))
            .where(Reservation.state == ReservationState.LOCKED)
            .group_by(Reservation.sku)
        ).all()
    )
    return [
        {
            "sku": p.sku,
            "name": p.name,
            "unit_price": str(p.unit_price),
            "active": p.active,
            "available": int(on_hand.get(p.sku, 0)) - int(reserved.get(p.sku, 0)),
        }
        for p in session.exec(select(Product).order_by(col(Product.sku))).all()
    ]


def customers_view(session: Session) -> list[dict[str, Any]]:
    open_totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    # The same exposure the credit check computes (activities/credit.py): unpaid, not prepaid, billable.
    for customer_id, total in session.exec(
        select(SalesOrder.customer_id, col(SalesOrder.total)).where(
            col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]),
            col(SalesOrder.paid).is_(False),
            SalesOrder.payment_method != "prepaid",
        )
    ).all():
        open_totals[customer_id] += total
    return [
        {
            "customer_id": c.customer_id,
            "name": c.name,
            "region": c.region,
            "credit_limit": str(c.credit_limit),
            "exposure": str(c.receivables + open_totals[c.customer_id]),
            "new": c.first_order,
        }
        for c in session.exec(select(Customer).order_by(col(Customer.customer_id))).all()
    ]


def stage_durations(session: Session, order_no: str) -> dict[str, float]:
    """Seconds spent in each status (the last one counts until now only if the order is still open)."""
    events = session.exec(select(OrderEvent).where(OrderEvent.order_no == order_no).order_by(col(OrderEvent.seq))).all()
    durations: dict[str, float] = defaultdict(float)
    for current, following in zip(events, events[1:], strict=False):
        durations[current.status] += (following.at - current.at).total_seconds()
    return dict(durations)


def kpis(session: Session) -> dict[str, Any]:
    """Counts by status, lead time intake→completion (p50/p90) and mean seconds per stage."""
    by_status = dict(session.exec(select(SalesOrder.status, func.count()).group_by(SalesOrder.status)).all())
    lead_times: list[float] = []
    stage_totals: dict[str, list[float]] = defaultdict(list)
    for order in session.exec(select(SalesOrder).where(SalesOrder.status == OrderStatus.COMPLETED)).all():
        lead_times.append((order.updated_at - order.created_at).total_seconds())
        for stage, seconds in stage_durations(session, order.order_no).items():
            stage_totals[stage].append(seconds)
    lead_times.sort()

    def pct(p: float) -> float | None:
        return round(lead_times[min(len(lead_times) - 1, int(p * len(lead_times)))], 1) if lead_times else None

    return {
        "orders_by_status": by_status,
        "completed": len(lead_times),
        "lead_time_seconds": {"p50": pct(0.5), "p90": pct(0.9)},
        "mean_stage_seconds": {stage: round(sum(v) / len(v), 1) for stage, v in sorted(stage_totals.items())},
    }
