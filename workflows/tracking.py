"""ShipmentTracking: follow one parcel with its carrier until it is signed for (or comes back)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.tracking import TrackingActivities
    from domain.tracking import FINAL_TRACKING_STATUSES, is_newer
    from models.contracts import (
        PollInput,
        ShipmentProgress,
        TrackingInput,
        TrackingResult,
    )
    from models.status import TrackingStatus

PROGRESS_SIGNAL = "shipment_progress"
# Poll failures that mean "no news from the carrier" (as opposed to a broken set-up, e.g. an unknown carrier).
STALL_ERRORS = frozenset({"NoNewTrackingEvents", "CarrierUnavailable"})


@workflow.defn
class ShipmentTracking:
    @workflow.run
    async def run(self, inp: TrackingInput) -> TrackingResult:
        status, known_events = inp.known_status, inp.known_events
        parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
        last_news, stalled = workflow.now(), False
        while True:
            # Infrequent poll: the activity fails while the carrier has nothing new, and its retry policy
            # (fixed interval, no attempt limit) is the poller — one activity in history per change. Its
            # schedule-to-close is the stall window: no news that long ends the attempt series.
            try:
                snapshot = await workflow.execute_activity_method(
                    TrackingActivities.poll_parcel,
                    PollInput(
                        order_no=inp.order_no,
                        carrier=inp.carrier,
                        tracking_no=inp.tracking_no,
                        known_status=status,
                        known_events=known_events,
                    ),
                    start_to_close_timeout=timedelta(seconds=30),
                    schedule_to_close_timeout=inp.stall_after,
                    retry_policy=RetryPolicy(
                        initial_interval=inp.poll_interval,
                        backoff_coefficient=1.0,
                        maximum_interval=inp.poll_interval,
                        non_retryable_error_types=["UnknownCarrier"],
                    ),
                )
            except ActivityError as err:
                # The window closed with no news: Temporal reports the timeout, or the last poll's own
                # "nothing new" / "carrier unavailable" when the next retry would not fit in the window.
                cause = err.cause
                quiet = isinstance(cause, ActivityTimeout) or (
                    isinstance(cause, ApplicationError) and cause.type in STALL_ERRORS
                )
                if not quiet:
                    raise
                expired = workflow.now() - last_news >= inp.give_up_after
                if expired or not stalled:  # flag the stall once; EXPIRED ends the tracking
                    stalled = True
                    flagged = TrackingStatus.EXPIRED if expired else TrackingStatus.EXCEPTION
                    await parent.signal(
                        PROGRESS_SIGNAL,
                        ShipmentProgress(carrier=inp.carrier, tracking_no=inp.tracking_no, status=flagged),
                    )
                if expired:
                    return TrackingResult(
                        carrier=inp.carrier, tracking_no=inp.tracking_no, status=TrackingStatus.EXPIRED
                    )
                continue
            last_news, stalled = workflow.now(), False
            # Carriers are not monotonic: a stale status never replaces a newer one.
            status = snapshot.status if is_newer(status, snapshot.status) else status
            known_events = len(snapshot.events)
            progress = ShipmentProgress(
                carrier=inp.carrier,
                tracking_no=inp.tracking_no,
                status=status,
                at=snapshot.events[-1].at if snapshot.events else workflow.now(),
                signed_by=snapshot.signed_by,
                signed_at=snapshot.signed_at,
            )
            await parent.signal(PROGRESS_SIGNAL, progress)
            if status in FINAL_TRACKING_STATUSES:
                return TrackingResult(
                    carrier=inp.carrier,
                    tracking_no=inp.tracking_no,
                    status=status,
                    signed_by=snapshot.signed_by,
                    signed_at=snapshot.signed_at,
                )
            if workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(inp.model_copy(update={"known_status": status, "known_events": known_events}))
