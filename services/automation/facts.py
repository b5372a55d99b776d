"""The facts a rule sees (rules/automation.py documents the set per trigger), read fresh from the database."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from models.tables import Customer, Product, SalesOrder, Shipment
from rules.automation import EventKind


class SubjectGone(LookupError):
    """The order (or product) the event is about is not in the database."""


@dataclass
class Preloaded:
    """Orders with their customers and parcels, read in one query per table for many events at once (a
    dispatcher pass) instead of three queries per event. An order asked for and not found is gone."""

    asked: frozenset[str] = frozenset()
    orders: dict[str, SalesOrder] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    parcels: dict[str, list[Shipment]] = field(default_factory=dict)


def preload(session: Session, order_nos: Collection[str]) -> Preloaded:
    asked = frozenset(order_nos)
    if not asked:
        return Preloaded()
    orders = {o.order_no: o for o in session.exec(select(SalesOrder).where(col(SalesOrder.order_no).in_(asked)))}
    customer_ids = {order.customer_id for order in orders.values()}
    customers = {
        c.customer_id: c for c in session.exec(select(Customer).where(col(Customer.customer_id).in_(customer_ids)))
    }
    parcels: dict[str, list[Shipment]] = {}
    query = select(Shipment).where(col(Shipment.order_no).in_(asked)).order_by(col(Shipment.dispatched_at).desc())
    for parcel in session.exec(query):
        parcels.setdefault(parcel.order_no, []).append(parcel)
    return Preloaded(asked, orders, customers, parcels)


def facts(
    session: Session,
    kind: EventKind,
    subject: str,
    data: Mapping[str, Any],
    *,
    rule: str,
    now: datetime,
    preloaded: Preloaded | None = None,
) -> dict[str, Any]:
    """The subject's facts now, the event's own facts, and the run's (rule name, time)."""
    values: dict[str, Any] = {"rule": rule, "fired_at": now}
    if kind == EventKind.STOCK_LEVEL:
        values.update(stock_facts(session, data))
    elif kind == EventKind.SCHEDULE and "order_nos" in data:
        values.update(digest_facts(data))
    else:
        values.update(order_facts(session, subject, now, preloaded))
        values.update(_event_facts(kind, data))
    return values


def needs_order(kind: EventKind, data: Mapping[str, Any]) -> bool:
    """Whether an event's facts are its order's (facts() reads the order for these)."""
    return kind != EventKind.STOCK_LEVEL and not (kind == EventKind.SCHEDULE and "order_nos" in data)


def order_facts(session: Session, order_no: str, now: datetime, preloaded: Preloaded | None = None) -> dict[str, Any]:
    if preloaded is not None and order_no in preloaded.asked:
        order = preloaded.orders.get(order_no)
    else:
        order = session.get(SalesOrder, order_no)
    if order is None:
        raise SubjectGone(f"order {order_no} is not in the database")
    payload = order.payload
    ship_to = payload.get("ship_to", {})
    lines = payload.get("lines", [])
    if preloaded is not None and order_no in preloaded.asked:
        customer = preloaded.customers.get(order.customer_id)
        parcels = preloaded.parcels.get(order_no, [])
    else:
        customer = session.get(Customer, order.customer_id)
        parcels = order_parcels(session, order_no)
    parcel = parcels[0] if parcels else None
    seconds = max((now - order.updated_at).total_seconds(), 0)
    return {
        "order_no": order.order_no,
        "status": order.status,
        "channel": order.channel,
        "customer_id": order.customer_id,
        "customer_name": str(ship_to.get("name") or (customer.name if customer else order.customer_id)),
        "customer_email": customer.email if customer else "",
        "region": str(ship_to.get("region") or (customer.region if customer else "")),
        "sales_rep": order.sales_rep,
        "order_type": order.order_type,
        "payment_method": order.payment_method,
        "paid": order.paid,
        "total": order.total,
        "currency": order.currency,
        "line_count": len(lines),
        "units": sum(int(line.get("qty", 0)) for line in lines),
        "skus": sorted({str(line.get("sku")) for line in lines}),
        "tags": list(order.tags or []),
        "priority": order.priority,
        "assignee": order.assignee,
        "hours_in_status": (Decimal(seconds) / 3600).quantize(Decimal("0.01")),
        "awaiting_role": order.awaiting_role or "",
        "tracking_no": parcel.tracking_no if parcel else "",
        "carrier": parcel.carrier if parcel else "",
        "parcel_status": parcel.status if parcel else "",
        "signed_by": ", ".join(p.signed_by for p in reversed(parcels) if p.signed_by),
    }


def order_parcels(session: Session, order_no: str) -> list[Shipment]:
    """The order's parcels, the latest dispatched first."""
    query = select(Shipment).where(Shipment.order_no == order_no).order_by(col(Shipment.dispatched_at).desc())
    return list(session.exec(query).all())


def latest_parcel(session: Session, order_no: str) -> Shipment | None:
    parcels = order_parcels(session, order_no)
    return parcels[0] if parcels else None


def stock_facts(session: Session, data: Mapping[str, Any]) -> dict[str, Any]:
    sku = str(data.get("sku", ""))
    product = session.get(Product, sku)
    return {
        "sku": sku,
        "product_name": product.name if product else sku,
        "warehouse": str(data.get("warehouse", "")),
        "available": int(data.get("available", 0)),
        "available_before": int(data.get("available_before", 0)),
        "reorder_level": int(data.get("reorder_level", product.reorder_level if product else 0)),
    }


def digest_facts(data: Mapping[str, Any]) -> dict[str, Any]:
    order_nos = [str(no) for no in data.get("order_nos", [])]
    return {"count": len(order_nos), "order_nos": order_nos, "orders": "\n".join(data.get("lines", order_nos))}


def _event_facts(kind: EventKind, data: Mapping[str, Any]) -> dict[str, Any]:
    if kind == EventKind.STATUS_CHANGED:
        return {
            "from_status": str(data.get("from_status", "")),
            "to_status": str(data.get("to_status", "")),
            "detail": str(data.get("detail", "")),
        }
    if kind == EventKind.FIELD_CHANGED:
        return {
            "field": str(data.get("field", "")),
            "old_value": str(data.get("old_value", "")),
            "new_value": str(data.get("new_value", "")),
        }
    if kind == EventKind.PARCEL_DISPATCHED:  # the parcel that left, not necessarily the latest one
        return {
            "tracking_no": str(data.get("tracking_no", "")),
            "carrier": str(data.get("carrier", "")),
            "warehouse": str(data.get("warehouse", "")),
        }
    if kind == EventKind.TRACKING_EVENT:
        found = {"event_status": str(data.get("event_status", "")), "exception": bool(data.get("exception"))}
        if data.get("tracking_no"):  # the parcel this news is about, not necessarily the latest one
            found.update(tracking_no=str(data["tracking_no"]), carrier=str(data.get("carrier", "")))
        return found
    return {}
