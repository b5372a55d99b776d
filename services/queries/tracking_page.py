"""The customer's tracking page (/track/{token}): one order as its customer may see it — the stage it is at,
what was ordered, each parcel with its carrier's events and when it should arrive. No staff data: no prices
we negotiated, no approvals, rules, credit, warehouses or people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from domain.customer_view import CustomerStage, customer_stage, expected_delivery
from models.tables import Product, SalesOrder, Shipment, TrackingEvent


@dataclass(frozen=True)
class ParcelEvent:
    at: datetime
    status: str
    location: str
    description: str


@dataclass(frozen=True)
class Parcel:
    carrier: str
    tracking_no: str
    status: str
    dispatched_at: datetime
    signed_by: str | None
    signed_at: datetime | None
    expected_by: datetime | None
    events: list[ParcelEvent]  # newest first, as parcel trackers show them


@dataclass(frozen=True)
class CustomerTracking:
    order_no: str
    ordered_at: datetime
    stage: CustomerStage
    items: list[tuple[str, str, int]]  # (sku, product name, qty)
    parcels: list[Parcel]


def customer_tracking(session: Session, order_no: str, *, transit: timedelta) -> CustomerTracking | None:
    order = session.get(SalesOrder, order_no)
    if order is None:
        return None
    lines = [(str(line["sku"]), int(line["qty"])) for line in order.payload.get("lines", [])]
    names = dict(
        session.exec(select(Product.sku, Product.name).where(col(Product.sku).in_([sku for sku, _ in lines]))).all()
    )
    shipments = session.exec(select(Shipment).where(Shipment.order_no == order_no).order_by(col(Shipment.id))).all()
    parcels = []
    for shipment in shipments:
        events = [
            ParcelEvent(at=e.at, status=e.status, location=e.location, description=e.description)
            for e in session.exec(
                select(TrackingEvent)
                .where(TrackingEvent.carrier == shipment.carrier, TrackingEvent.tracking_no == shipment.tracking_no)
                .order_by(col(TrackingEvent.at).desc(), col(TrackingEvent.id).desc())
            ).all()
        ]
        latest = events[0].at if events else None
        parcels.append(
            Parcel(
                carrier=shipment.carrier,
                tracking_no=shipment.tracking_no,
                status=shipment.status,
                dispatched_at=shipment.dispatched_at,
                signed_by=shipment.signed_by,
                signed_at=shipment.signed_at,
                expected_by=expected_delivery(shipment.dispatched_at, shipment.status, latest, transit),
                events=events,
            )
        )
    return CustomerTracking(
        order_no=order.order_no,
        ordered_at=order.created_at,
        stage=customer_stage(order.status),
        items=[(sku, str(names.get(sku, "")), qty) for sku, qty in lines],
        parcels=parcels,
    )
