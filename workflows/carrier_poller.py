"""CarrierPoller: one per batch carrier (and task queue). Every interval it sweeps all open parcels of that
carrier in the carrier's batch query — 40 numbers a call on 17TRACK — instead of one call per parcel, and
signals news to each parcel's ShipmentTracking. Started (or told) by each new parcel's tracking with
signal-with-start; it ends by itself when a sweep finds nothing open and no parcel arrived meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.contracts import PollerInput, SweepInput

from workflows import contract
from workflows.contract import Signal
from workflows.steps import TrackingSteps

# A run continues as new past this many history events (~11 a sweep, ~2 per parcel-opened signal), checked
# while it waits too, so a flood of new parcels cannot push one run towards the per-run signal limit.
MAX_EVENTS_PER_RUN = 500


@workflow.defn(name=contract.POLLER_WORKFLOW)
class CarrierPoller:
    def __init__(self) -> None:
        self.opened = 0
        self.max_events = MAX_EVENTS_PER_RUN

    @workflow.signal(name=Signal.PARCEL_OPENED)
    def parcel_opened(self, tracking_workflow_id: str) -> None:
        self.opened += 1

    @workflow.run
    async def run(self, inp: PollerInput) -> int:
        """Returns the number of sweeps made over the poller's whole life (all runs)."""
        self.max_events = inp.max_events_per_run or MAX_EVENTS_PER_RUN
        sweeps = inp.sweeps
        first_retry = min(timedelta(seconds=5), inp.interval)  # a failed sweep is retried, at most every interval
        if inp.next_sweep_at is not None:  # the previous run continued as new mid-pause: keep the pace
            await self._pause_until(inp, inp.next_sweep_at, sweeps)
        while True:
            self.opened = 0
            outcome = await workflow.execute_activity_method(
                TrackingSteps.sweep_carrier,
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
            await self._pause_until(inp, workflow.now() + pause, sweeps)

    async def _pause_until(self, inp: PollerInput, until: datetime, sweeps: int) -> None:
        """Wait for the next sweep; a run grown long meanwhile (thousands of parcels opened within one interval,
        each a signal) continues as new at once, so no run nears the server's per-run signal limit (10,000)."""
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return
        try:
            await workflow.wait_condition(self._run_too_long, timeout=remaining)
        except TimeoutError:
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(inp.model_copy(update={"sweeps": sweeps, "next_sweep_at": until}))

    def _run_too_long(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > self.max_events
