"""Poll a carrier for a parcel (the infrequent-poll pattern: when nothing is new this activity fails and
its retry policy is the poll interval), record new events, and move the shipment forward only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from core.config import Settings
from core.db import unit_of_work
from core.logging import bind_activity
from domain.tracking import is_newer
from integrations.carriers.base import CarrierError
from integrations.carriers.registry import carrier_client
from models.contracts import PollInput
from models.status import TrackingStatus
from models.tables import Shipment, TrackingEvent
from models.tracking import TrackingSnapshot


class TrackingActivities:
    def __init__(self, engine: Engine, settings: Settings, http: httpx.AsyncClient) -> None:
        self.engine = engine
        self.settings = settings
        self.http = http

    @activity.defn
    async def poll_parcel(self, inp: PollInput) -> TrackingSnapshot:
        bind_activity(inp.order_no, "poll_parcel", activity.info().workflow_id or "")
        try:
            snapshot = await carrier_client(inp.carrier, self.http, self.settings).track(inp.tracking_no)
        except ValueError as exc:  # unknown carrier code: retrying cannot help
            raise ApplicationError(str(exc), type="UnknownCarrier", non_retryable=True) from exc
        except CarrierError as exc:
            # The carrier's own Retry-After (429, 503) replaces the poll interval for the next attempt.
            retry_after = getattr(exc, "retry_after", None)
            raise ApplicationError(
                f"carrier {inp.carrier} unavailable: {exc}",
                type="CarrierUnavailable",
                next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
            ) from exc
        if not is_newer(inp.known_status, snapshot.status) and len(snapshot.events) <= inp.known_events:
            # BENIGN: "nothing new yet" is the poll's normal answer, not a failure worth a logged traceback.
            raise ApplicationError(
                f"no news for {inp.tracking_no} ({snapshot.status})",
                type="NoNewTrackingEvents",
                category=ApplicationErrorCategory.BENIGN,
            )
        await asyncio.to_thread(self._record, inp, snapshot)
        return snapshot

    def _record(self, inp: PollInput, snapshot: TrackingSnapshot) -> None:
        with unit_of_work(self.engine) as session:
            seen = {
                (event.status, event.at)
                for event in session.exec(
                    select(TrackingEvent).where(
                        TrackingEvent.carrier == inp.carrier, TrackingEvent.tracking_no == inp.tracking_no
                    )
                )
            }
            for event in snapshot.events:
                if (event.status, event.at) in seen:
                    continue
                seen.add((event.status, event.at))
                session.add(
                    TrackingEvent(
                        carrier=inp.carrier,
                        tracking_no=inp.tracking_no,
                        status=event.status,
                        at=event.at,
                        location=event.location[:200],
                        description=event.description[:500],
                    )
                )
            shipment = session.exec(
                select(Shipment).where(Shipment.carrier == inp.carrier, Shipment.tracking_no == inp.tracking_no)
            ).first()
            if shipment is not None and is_newer(TrackingStatus(shipment.status), snapshot.status):
                shipment.status = snapshot.status
                if snapshot.status == TrackingStatus.DELIVERED:
                    shipment.signed_by = snapshot.signed_by
                    shipment.signed_at = snapshot.signed_at
                session.add(shipment)
