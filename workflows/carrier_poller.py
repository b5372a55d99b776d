"""CarrierPoller: one per batch carrier (and task queue). Every interval it sweeps all open parcels of that
carrier in the carrier's batch query — 40 numbers a call on 17TRACK — instead of one call per parcel, and
signals news to each parcel's ShipmentTracking. Started (or told) by each new parcel's tracking with
signal-with-start; it ends by itself when a sweep finds nothing open and no parcel arrived meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.tracking import PARCEL_OPENED_SIGNAL, TrackingActivities
    from models.contracts import PollerInput, SweepInput

# A run continues as new past this many history events (~11 a sweep, 1 per parcel-opened signal).
MAX_EVENTS_PER_RUN = 500


@workflow.defn
class CarrierPoller:
    def __init__(self) -> None:
        self.opened = 0

    @workflow.signal(name=PARCEL_OPENED_SIGNAL)
    def parcel_opened(self, tracking_workflow_id: str) -> None:
        self.opened += 1

    @workflow.run
    async def run(self, inp: PollerInput) -> int:
        """Returns the number of sweeps made over the poller's whole life (all runs)."""
        sweeps = inp.sweeps
        first_retry = min(timedelta(seconds=5), inp.interval)  # a failed sweep is retried, at most every interval
        while True:
            self.opened = 0
            outcome = await workflow.execute_activity_method(
                TrackingActivities.sweep_carrier,
                SweepInput(carrier=inp.carrier, give_up_after=inp.give_up_after),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(initial_interval=first_retry, maximum_interval=max(inp.interval, first_retry)),
            )
            sweeps += 1
            if outcome.parcels == 0 and self.opened == 0:
                return sweeps  # nothing left to follow; the next dispatched parcel starts a new poller
            pause = inp.interval
            if outcome.retry_after is not None:  # the carrier's Retry-After wins over our interval
                pause = max(pause, timedelta(seconds=outcome.retry_after))
            await workflow.sleep(pause)
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS_PER_RUN:
                break
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp.model_copy(update={"sweeps": sweeps}))
