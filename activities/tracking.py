"""Ask carriers about parcels and keep what they say.

`poll_parcel`: one parcel (the infrequent-poll pattern: when nothing is new this activity fails and its retry
policy is the poll interval). `sweep_carrier`: every open parcel of a batch carrier in its batch query, news
signalled to each parcel's ShipmentTracking. Both record new events and move the shipment forward only.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine
from sqlmodel import select
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.db import read_only, unit_of_work
from core.logging import bind_activity
from domain.tracking import FINAL_TRACKING_STATUSES, is_newer
from integrations.carriers.base import CarrierError, CarrierUnavailable
from integrations.carriers.registry import UnknownCarrierCode, batch_carrier_client, carrier_client, subscribe_parcel
from models.contracts import (
    CloseParcelInput,
    EnsurePollerInput,
    PollerInput,
    PollInput,
    SubscribeInput,
    SweepInput,
    SweepOutcome,
)
from models.status import TrackingStatus
from models.tables import Shipment, TrackingEvent, utcnow
from models.tracking import TrackingSnapshot
from services.billing.invoices import InvoicePolicy
from services.billing.triggers import UNDELIVERED, on_parcel_end
from services.tracking import record_snapshot
from workflows import contract
from workflows.contract import ErrorType, Signal, poller_workflow_id, tracking_workflow_id
from workflows.steps import TrackingSteps


class TrackingActivities(TrackingSteps):
    def __init__(self, engine: Engine, settings: Settings, http: httpx.AsyncClient) -> None:
        self.engine = engine
        self.settings = settings
        self.http = http

    @activity.defn
    async def subscribe_parcel(self, inp: SubscribeInput) -> None:
        """Ask the carrier to push this parcel's news to our webhook (idempotent: re-subscribing is accepted)."""
        bind_activity("", "subscribe_parcel", activity.info().workflow_id or "")
        try:
            await subscribe_parcel(inp.carrier, inp.tracking_no, inp.callback_url, self.http, self.settings)
        except UnknownCarrierCode as exc:
            raise ApplicationError(str(exc), type=ErrorType.UNKNOWN_CARRIER, non_retryable=True) from exc

    @activity.defn
    async def ensure_carrier_poller(self, inp: EnsurePollerInput) -> str:
        """Make sure the carrier's CarrierPoller runs on this task queue and knows a parcel was opened
        (signal-with-start: a poller about to finish for lack of parcels sees the signal and keeps going)."""
        info = activity.info()
        workflow_id = poller_workflow_id(inp.carrier, info.task_queue)
        await activity.client().start_workflow(
            contract.POLLER_WORKFLOW,
            PollerInput(carrier=inp.carrier, interval=inp.interval, give_up_after=inp.give_up_after),
            id=workflow_id,
            task_queue=info.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            start_signal=Signal.PARCEL_OPENED,
            start_signal_args=[info.workflow_id or ""],
        )
        return workflow_id

    @activity.defn
    async def sweep_carrier(self, inp: SweepInput) -> SweepOutcome:
        """Ask the carrier about every open parcel, `batch_limit` numbers per call; signal news to each parcel's
        ShipmentTracking (before recording it: a crash in between re-sends, and the workflow drops repeats)."""
        client = batch_carrier_client(inp.carrier, self.http, self.settings)
        now = activity.info().current_attempt_scheduled_time  # the server's clock, also on a time-skipping one
        # Three give-up windows: a parcel with news on day 29 may still be delivered on day 32.
        numbers = await asyncio.to_thread(self._open_parcels, inp.carrier, now - 3 * inp.give_up_after)
        calls = failed = news = 0
        retry_after: float | None = None
        temporal = activity.client()
        for start in range(0, len(numbers), client.batch_limit):
            chunk = numbers[start : start + client.batch_limit]
            calls += 1
            try:
                snapshots = await client.track_many(chunk)
            except CarrierUnavailable as exc:
                failed += 1
                if exc.retry_after:  # the carrier asked us to back off: the rest waits for the next sweep
                    retry_after = exc.retry_after
                    break
                continue
            except CarrierError as exc:  # one bad answer must not starve the other parcels
                activity.logger.warning("sweep %s: %s", inp.carrier, exc)
                failed += 1
                continue
            fresh = await asyncio.to_thread(self._news, inp.carrier, snapshots)
            for snapshot in fresh:
                try:
                    await temporal.get_workflow_handle(tracking_workflow_id(inp.carrier, snapshot.tracking_no)).signal(
                        Signal.PARCEL_NEWS, snapshot
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    # Its tracking has not started yet (or has ended): not recorded, so the next sweep tells it.
                    continue
                await asyncio.to_thread(record_snapshot, self.engine, snapshot, InvoicePolicy.of(self.settings))
                news += 1
            activity.heartbeat(start + len(chunk))
        return SweepOutcome(parcels=len(numbers), calls=calls, news=news, failed_calls=failed, retry_after=retry_after)

    def _open_parcels(self, carrier: str, dispatched_since: datetime) -> list[str]:
        """Parcels not at a final status (an expired tracking marks its parcel EXPIRED). The dispatch bound only
        keeps rows orphaned by a terminated tracking from being asked about forever."""
        with read_only(self.engine) as session:
            return list(
                session.exec(
                    select(Shipment.tracking_no)
                    .where(
                        Shipment.carrier == carrier,
                        Shipment.status.notin_([s.value for s in FINAL_TRACKING_STATUSES]),  # type: ignore[attr-defined]
                        Shipment.dispatched_at >= dispatched_since,
                    )
                    .order_by(Shipment.id)  # type: ignore[arg-type]
                )
            )

    @activity.defn
    def close_parcel(self, inp: CloseParcelInput) -> None:
        """The tracking gave up on the parcel: mark it so (sweeps stop asking about it; views show it)."""
        with unit_of_work(self.engine) as session:
            shipment = session.exec(
                select(Shipment)
                .where(Shipment.carrier == inp.carrier, Shipment.tracking_no == inp.tracking_no)
                .with_for_update()
            ).first()
            if shipment is not None and TrackingStatus(shipment.status) not in FINAL_TRACKING_STATUSES:
                shipment.status = inp.status
                session.add(shipment)
                if inp.status in UNDELIVERED:  # given up on: what it billed is credited
                    on_parcel_end(session, shipment, inp.status, InvoicePolicy.of(self.settings), utcnow())

    def _news(self, carrier: str, snapshots: list[TrackingSnapshot]) -> list[TrackingSnapshot]:
        """The snapshots that say something the database does not know yet (a newer status or a new event)."""
        if not snapshots:
            return []
        numbers = [s.tracking_no for s in snapshots]
        with read_only(self.engine) as session:
            statuses = dict(
                session.exec(
                    select(Shipment.tracking_no, Shipment.status).where(
                        Shipment.carrier == carrier,
                        Shipment.tracking_no.in_(numbers),  # type: ignore[attr-defined]
                    )
                ).all()
            )
            seen: set[tuple[str, str, datetime]] = {
                (event.tracking_no, event.status, event.at)
                for event in session.exec(
                    select(TrackingEvent).where(
                        TrackingEvent.carrier == carrier,
                        TrackingEvent.tracking_no.in_(numbers),  # type: ignore[attr-defined]
                    )
                )
            }
        return [
            s
            for s in snapshots
            if is_newer(TrackingStatus(statuses.get(s.tracking_no, TrackingStatus.PENDING)), s.status)
            or any((s.tracking_no, e.status, e.at) not in seen for e in s.events)
        ]

    @activity.defn
    async def poll_parcel(self, inp: PollInput) -> TrackingSnapshot:
        bind_activity(inp.order_no, "poll_parcel", activity.info().workflow_id or "")
        try:
            carrier = carrier_client(inp.carrier, self.http, self.settings)
        except UnknownCarrierCode as exc:  # retrying cannot help
            raise ApplicationError(str(exc), type=ErrorType.UNKNOWN_CARRIER, non_retryable=True) from exc
        try:
            snapshot = await carrier.track(inp.tracking_no)
        except CarrierError as exc:
            # The carrier's own Retry-After (429, 503) replaces the poll interval for the next attempt.
            retry_after = getattr(exc, "retry_after", None)
            raise ApplicationError(
                f"carrier {inp.carrier} unavailable: {exc}",
                type=ErrorType.CARRIER_UNAVAILABLE,
                next_retry_delay=timedelta(seconds=retry_after) if retry_after else None,
            ) from exc
        except Exception as exc:
            # An answer the adapter could not read (a parsing bug, a shape nobody foresaw): logged in full for a
            # developer, and for the parcel just a quiet carrier — polled again, flagged as stalled, never ended.
            activity.logger.exception("poll of %s %s: unreadable answer", inp.carrier, inp.tracking_no)
            raise ApplicationError(
                f"carrier {inp.carrier}: answer for {inp.tracking_no} could not be read: {exc}",
                type=ErrorType.CARRIER_UNREADABLE,
            ) from exc
        if not is_newer(inp.known_status, snapshot.status) and len(snapshot.events) <= inp.known_events:
            # BENIGN: "nothing new yet" is the poll's normal answer, not a failure worth a logged traceback.
            raise ApplicationError(
                f"no news for {inp.tracking_no} ({snapshot.status})",
                type=ErrorType.NO_NEW_TRACKING_EVENTS,
                category=ApplicationErrorCategory.BENIGN,
            )
        await asyncio.to_thread(record_snapshot, self.engine, snapshot, InvoicePolicy.of(self.settings))
        return snapshot
