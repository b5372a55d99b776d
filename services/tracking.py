"""What carriers tell us about parcels, kept: new events stored once, the shipment moved forward only.

Used by the tracking activities (polls, sweeps) and the carrier webhook route (pushes) alike.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from core.db import read_only, unit_of_work
from domain.tracking import next_status
from models.status import TrackingStatus
from models.tables import Shipment, TrackingEvent
from models.tracking import TrackingSnapshot


def record_snapshot(engine: Engine, snapshot: TrackingSnapshot) -> int:
    """Store the events not yet stored and move the shipment forward only; returns how many events were new."""
    with unit_of_work(engine) as session:
        seen = {
            (event.status, event.at)
            for event in session.exec(
                select(TrackingEvent).where(
                    TrackingEvent.carrier == snapshot.carrier, TrackingEvent.tracking_no == snapshot.tracking_no
                )
            )
        }
        seen_before = set(seen)
        added = 0
        for event in snapshot.events:
            if (event.status, event.at) in seen:
                continue
            seen.add((event.status, event.at))
            added += 1
            session.add(
                TrackingEvent(
                    carrier=snapshot.carrier,
                    tracking_no=snapshot.tracking_no,
                    status=event.status,
                    at=event.at,
                    location=event.location[:200],
                    description=event.description[:500],
                )
            )
        shipment = session.exec(
            select(Shipment)
            .where(Shipment.carrier == snapshot.carrier, Shipment.tracking_no == snapshot.tracking_no)
            .with_for_update()  # a push and a sweep at once must not move the status back (Postgres)
        ).first()
        moved = (
            next_status(
                TrackingStatus(shipment.status),
                snapshot.status,
                last_event_at=max((at for _, at in seen_before), default=None),
                candidate_at=snapshot.events[-1].at if snapshot.events else None,
            )
            if shipment is not None
            else None
        )
        if shipment is not None and moved is not None:
            shipment.status = moved
            if moved == TrackingStatus.DELIVERED:
                shipment.signed_by = snapshot.signed_by
                shipment.signed_at = snapshot.signed_at
            session.add(shipment)
    return added


def shipment_status(engine: Engine, carrier: str, tracking_no: str) -> TrackingStatus | None:
    """The parcel's status as we know it; None when it is not a parcel we ship."""
    with read_only(engine) as session:
        found = session.exec(
            select(Shipment.status).where(Shipment.carrier == carrier, Shipment.tracking_no == tracking_no)
        ).first()
    return None if found is None else TrackingStatus(found)
