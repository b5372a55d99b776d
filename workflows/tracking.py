"""ShipmentTracking: follow one parcel with its carrier until it is signed for (or comes back).

News about the parcel comes three ways: this workflow's own poll (carriers without a batch query), the
carrier's CarrierPoller sweep (batch carriers), and the carrier's pushes (webhook → signal). All three are
deduplicated the same way and only move the parcel forward.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from activities.tracking import NEWS_SIGNAL, TrackingActivities
    from domain.tracking import FINAL_TRACKING_STATUSES, is_newer
    from models.contracts import (
        EnsurePollerInput,
        PollInput,
        ShipmentProgress,
        TrackingInput,
        TrackingResult,
    )
    from models.status import TrackingStatus
    from models.tracking import TrackingSnapshot

PROGRESS_SIGNAL = "shipment_progress"
# Poll failures that mean "no news from the carrier" (as opposed to a broken set-up, e.g. an unknown carrier).
STALL_ERRORS = frozenset({"NoNewTrackingEvents", "CarrierUnavailable"})
# A run's history stays well under this many events; then the tracking continues as new.
MAX_EVENTS_PER_RUN = 800


class _QuietWindow(Exception):
    """The stall window closed without any news from the carrier."""


@workflow.defn
class ShipmentTracking:
    def __init__(self) -> None:
        self.inbox: list[TrackingSnapshot] = []

    @workflow.signal(name=NEWS_SIGNAL)
    def parcel_news(self, snapshot: TrackingSnapshot) -> None:
        """A push from the carrier's webhook, or the CarrierPoller's sweep. Repeats are dropped in run()."""
        self.inbox.append(snapshot)

    @workflow.run
    async def run(self, inp: TrackingInput) -> TrackingResult:
        status, known_events, stalled = inp.known_status, inp.known_events, inp.stalled
        parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
        last_news = inp.last_news_at or workflow.now()
        if inp.batched and inp.last_news_at is None:  # first run only: make sure the carrier's poller runs
            await self._ensure_poller(inp)
        while True:
            try:
                snapshot = await self._next_news(inp, status, known_events)
            except _QuietWindow:
                if inp.batched:  # self-healing: a poller lost for any reason is back for the next window
                    await self._ensure_poller(inp)
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
            if not is_newer(status, snapshot.status) and len(snapshot.events) <= known_events:
                continue  # a repeat (push and poll saying the same, a re-sent sweep signal)
            last_news, stalled = workflow.now(), False
            # Carriers are not monotonic: a stale status never replaces a newer one.
            status = snapshot.status if is_newer(status, snapshot.status) else status
            known_events = max(known_events, len(snapshot.events))
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
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS_PER_RUN:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    inp.model_copy(
                        update={
                            "known_status": status,
                            "known_events": known_events,
                            "last_news_at": last_news,
                            "stalled": stalled,
                        }
                    )
                )

    @staticmethod
    async def _ensure_poller(inp: TrackingInput) -> None:
        await workflow.execute_activity_method(
            TrackingActivities.ensure_carrier_poller,
            EnsurePollerInput(carrier=inp.carrier, interval=inp.poll_interval, give_up_after=inp.give_up_after),
            start_to_close_timeout=timedelta(seconds=30),
        )

    async def _next_news(self, inp: TrackingInput, status: TrackingStatus, known_events: int) -> TrackingSnapshot:
        """The next thing a carrier said: a pushed/swept snapshot, or this workflow's own poll. Raises
        _QuietWindow when the stall window passes without any."""
        if self.inbox:
            return self.inbox.pop(0)
        if inp.batched:
            try:
                await workflow.wait_condition(lambda: bool(self.inbox), timeout=inp.stall_after)
            except TimeoutError:
                raise _QuietWindow() from None
            return self.inbox.pop(0)
        # Infrequent poll: the activity fails while the carrier has nothing new, and its retry policy (fixed
        # interval, no attempt limit) is the poller — one activity in history per change. Its schedule-to-close
        # is the stall window: no news that long ends the attempt series.
        poll = workflow.start_activity_method(
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
        await workflow.wait_condition(lambda: poll.done() or bool(self.inbox))
        if not poll.done():  # a push came first: stop this poll series, the next one asks from the new state
            poll.cancel()
            try:
                self.inbox.append(await poll)  # it finished in the same breath: its answer is news too
            except (ActivityError, asyncio.CancelledError, TemporalCancelledError):
                pass
            return self.inbox.pop(0)
        try:
            return poll.result()
        except ActivityError as err:
            # The window closed with no news: Temporal reports the timeout, or the last poll's own
            # "nothing new" / "carrier unavailable" when the next retry would not fit in the window.
            cause = err.cause
            quiet = isinstance(cause, ActivityTimeout) or (
                isinstance(cause, ApplicationError) and cause.type in STALL_ERRORS
            )
            if quiet:
                raise _QuietWindow() from None
            raise
