"""ShipmentTracking: follow one parcel with its carrier until it is signed for (or comes back)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.tracking import TrackingActivities
    from domain.tracking import FINAL_TRACKING_STATUSES, is_newer
    from models.contracts import (
        PollInput,
        ShipmentProgress,
        TrackingInput,
        TrackingResult,
    )

PROGRESS_SIGNAL = "shipment_progress"


@workflow.defn
class ShipmentTracking:
    @workflow.run
    async def run(self, inp: TrackingInput) -> TrackingResult:
        status, known_events = inp.known_status, inp.known_events
        while True:
            # Infrequent poll: the activity fails while the carrier has nothing new, and its retry policy
            # (fixed interval, no attempt limit) is the poller — one activity in history per change.
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
                retry_policy=RetryPolicy(
                    initial_interval=inp.poll_interval,
                    backoff_coefficient=1.0,
                    maximum_interval=inp.poll_interval,
                    non_retryable_error_types=["UnknownCarrier"],
                ),
            )
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
            await workflow.get_external_workflow_handle(inp.parent_workflow_id).signal(PROGRESS_SIGNAL, progress)
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
