"""What carriers tell us about parcels, kept: new events stored once, the shipment moved forward only.

Used by the tracking activities (polls, sweeps) and the carrier webhook route (pushes) alike.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from core.db import read_only, unit_of_work
from domain.tracking import EXCEPTION_STATUSES, next_status
from models.status import TrackingStatus
from models.tables import Shipment, TrackingEvent, utcnow
from models.text import strip_unstorable
from models.tracking import TrackingSnapshot
from rules.automation import EventKind
from services import order_facts
from services.automation.events import record_event
from services.billing.invoices import InvoicePolicy
from services.billing.triggers import UNDELIVERED, on_parcel_end


def record_snapshot(engine: Engine, snapshot: TrackingSnapshot, policy: InvoicePolicy) -> int:
    """Store the events not yet stored and move the shipment forward only; returns how many events were new.

    The shipment row is locked first (Postgres; SQLite's BEGIN IMMEDIATE serialises writers anyway), so a push and
    a sweep with the same news take turns: the second sees the first's events and adds nothing. News about a
    parcel we do not ship is not kept. A parcel signed for, refused or returned tells billing in the same
    transaction (services/billing/triggers.py: a delivery invoice, a COD collection, a credit note)."""
    with unit_of_work(engine) as session:
        shipment = session.exec(
            select(Shipment)
            .where(Shipment.carrier == snapshot.carrier, Shipment.tracking_no == snapshot.tracking_no)
            .with_for_update()
        ).first()
        if shipment is None:
            return 0
        seen = {
            (event.status, event.at)
            for event in session.exec(
                select(TrackingEvent).where(
                    TrackingEvent.carrier == snapshot.carrier, TrackingEvent.tracking_no == snapshot.tracking_no
                )
            )
        }
        newest_before = max((at for _, at in seen), default=None)
        added = 0
        for event in snapshot.events:
            if (event.status, event.at) in seen:
                continue
            seen.add((event.status, event.at))
            added += 1
            news = {
                "event_status": event.status.value,
                "exception": event.status in EXCEPTION_STATUSES,
                "tracking_no": snapshot.tracking_no,
                "carrier": snapshot.carrier,
            }
            key = f"parcel:{snapshot.carrier}:{snapshot.tracking_no}:{event.status.value}:{event.at.isoformat()}"
            record_event(session, EventKind.TRACKING_EVENT, shipment.order_no, key, news, event.at)
            session.add(
                TrackingEvent(
                    carrier=snapshot.carrier,
                    tracking_no=snapshot.tracking_no,
                    status=event.status,
                    at=event.at,
                    location=strip_unstorable(event.location)[:200],
                    description=strip_unstorable(event.description)[:500],
                )
            )
        moved = next_status(
            TrackingStatus(shipment.status),
            snapshot.status,
            last_event_at=newest_before,
            candidate_at=snapshot.events[-1].at if snapshot.events else None,
        )
        if moved is not None:
            shipment.status = moved
            if moved == TrackingStatus.DELIVERED:
                shipment.signed_by = strip_unstorable(snapshot.signed_by)[:200] if snapshot.signed_by else None
                shipment.signed_at = snapshot.signed_at
            if moved == TrackingStatus.DELIVERED or moved in UNDELIVERED:
                # When it ended as the carrier tells it: signed for, or its newest news (for the carriers' KPIs).
                last_news = max((at for _, at in seen), default=None)
                shipment.ended_at = shipment.signed_at or last_news or utcnow()
            session.add(shipment)
            if moved == TrackingStatus.DELIVERED or moved in UNDELIVERED:
                on_parcel_end(session, shipment, moved, policy, utcnow())  # booked when we learn of it
                order_facts.refresh(session, shipment.order_no, None)  # a parcel back: the order was returned
    return added


def shipment_status(engine: Engine, carrier: str, tracking_no: str) -> TrackingStatus | None:
    """The parcel's status as we know it; None when it is not a parcel we ship."""
    with read_only(engine) as session:
        found = session.exec(
            select(Shipment.status).where(Shipment.carrier == carrier, Shipment.tracking_no == tracking_no)
        ).first()
    return None if found is None else TrackingStatus(found)
