"""ShipmentTracking: follow one parcel with its carrier until it is signed for (or comes back).

News about the parcel comes three ways: this workflow's own poll (carriers without a batch query), the
carrier's CarrierPoller sweep (batch carriers), and the carrier's pushes (webhook → signal). All three are
deduplicated the same way and only move the parcel forward.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from domain.tracking import FINAL_TRACKING_STATUSES, next_status
    from models.contracts import (
        CloseParcelInput,
        EnsurePollerInput,
        PollInput,
        ShipmentProgress,
        SubscribeInput,
        TrackingInput,
        TrackingResult,
    )
    from models.status import TrackingStatus
    from models.tracking import TrackingSnapshot

from workflows import contract
from workflows.contract import STALL_ERRORS, ErrorType, Signal
from workflows.steps import TrackingSteps

# A run's history stays well under this many events; then the tracking continues as new.
MAX_EVENTS_PER_RUN = 800


class _QuietWindow(Exception):
    """The stall window closed without any news from the carrier."""


@workflow.defn(name=contract.TRACKING_WORKFLOW)
class ShipmentTracking:
    def __init__(self) -> None:
        self.inbox: list[TrackingSnapshot] = []
        self.status = TrackingStatus.PENDING
        self.known_events = 0
        self.last_event_at: datetime | None = None

    @workflow.signal(name=Signal.PARCEL_NEWS)
    def parcel_news(self, snapshot: TrackingSnapshot) -> None:
        """A push from the carrier's webhook, or the CarrierPoller's sweep. Repeats are dropped in run()."""
        self.inbox.append(snapshot)

    @workflow.run
    async def run(self, inp: TrackingInput) -> TrackingResult:
        self.status, self.known_events, self.last_event_at = inp.known_status, inp.known_events, inp.last_event_at
        stalled = inp.stalled
        parent = workflow.get_external_workflow_handle(inp.parent_workflow_id)
        last_news = inp.last_news_at or workflow.now()
        window_start = last_news  # the stall window runs from the last news, or the last stall flagged
        if inp.push_callback and inp.last_news_at is None:  # first run only: ask the carrier to push news
            await self._subscribe(inp, inp.push_callback)
        if inp.batched and inp.last_news_at is None:  # first run only: make sure the carrier's poller runs
            await self._ensure_poller(inp)
        while True:
            _stop_if_cancelled()
            info = workflow.info()
            long_run = info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS_PER_RUN
            if long_run and not self.inbox:
                await workflow.wait_condition(workflow.all_handlers_finished)
                if not self.inbox:  # news that came meanwhile is taken first, never dropped
                    workflow.continue_as_new(
                        inp.model_copy(
                            update={
                                "known_status": self.status,
                                "known_events": self.known_events,
                                "last_event_at": self.last_event_at,
                                "last_news_at": last_news,
                                "stalled": stalled,
                            }
                        )
                    )
            try:
                snapshot = await self._next_news(inp, window_start)
            except _QuietWindow:
                window_start = workflow.now()
                if inp.batched:  # self-healing: a poller lost for any reason is back for the next window
                    await self._ensure_poller(inp)
                expired = workflow.now() - last_news >= inp.give_up_after
                if expired or not stalled:  # flag the stall once; EXPIRED ends the tracking
                    stalled = True
                    flagged = TrackingStatus.EXPIRED if expired else TrackingStatus.EXCEPTION
                    await parent.signal(
                        Signal.SHIPMENT_PROGRESS,
                        ShipmentProgress(carrier=inp.carrier, tracking_no=inp.tracking_no, status=flagged),
                    )
                if expired:
                    await workflow.execute_activity_method(
                        TrackingSteps.close_parcel,
                        CloseParcelInput(
                            carrier=inp.carrier, tracking_no=inp.tracking_no, status=TrackingStatus.EXPIRED
                        ),
                        start_to_close_timeout=timedelta(seconds=30),
                    )
                    return TrackingResult(
                        carrier=inp.carrier, tracking_no=inp.tracking_no, status=TrackingStatus.EXPIRED
                    )
                continue
            if not self._is_news(snapshot):
                continue  # a repeat (push and poll saying the same, a re-sent sweep signal, a late re-send)
            last_news = window_start = workflow.now()
            stalled = False
            # Carriers are not monotonic: a stale status never replaces a newer one.
            self.status = self._accepted(snapshot) or self.status
            self.known_events = max(self.known_events, len(snapshot.events))
            if snapshot.events:
                newest = snapshot.events[-1].at
                self.last_event_at = max(self.last_event_at, newest) if self.last_event_at else newest
            progress = ShipmentProgress(
                carrier=inp.carrier,
                tracking_no=inp.tracking_no,
                status=self.status,
                at=snapshot.events[-1].at if snapshot.events else workflow.now(),
                signed_by=snapshot.signed_by,
                signed_at=snapshot.signed_at,
            )
            await parent.signal(Signal.SHIPMENT_PROGRESS, progress)
            if self.status in FINAL_TRACKING_STATUSES:
                delivered = self.status == TrackingStatus.DELIVERED
                return TrackingResult(
                    carrier=inp.carrier,
                    tracking_no=inp.tracking_no,
                    status=self.status,
                    signed_by=snapshot.signed_by if delivered else None,
                    signed_at=snapshot.signed_at if delivered else None,
                )

    def _accepted(self, snapshot: TrackingSnapshot) -> TrackingStatus | None:
        """The parcel's new status if this snapshot moves it (domain rules), else None."""
        return next_status(
            self.status,
            snapshot.status,
            last_event_at=self.last_event_at,
            candidate_at=snapshot.events[-1].at if snapshot.events else None,
        )

    def _is_news(self, snapshot: TrackingSnapshot) -> bool:
        return self._accepted(snapshot) is not None or len(snapshot.events) > self.known_events

    @staticmethod
    async def _subscribe(inp: TrackingInput, callback_url: str) -> None:
        try:
            await workflow.execute_activity_method(
                TrackingSteps.subscribe_parcel,
                SubscribeInput(carrier=inp.carrier, tracking_no=inp.tracking_no, callback_url=callback_url),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=[ErrorType.UNKNOWN_CARRIER]),
            )
        except ActivityError as err:  # no pushes then: the parcel is still followed by polling
            workflow.logger.warning("push subscription for %s failed: %s", inp.tracking_no, err.cause)

    @staticmethod
    async def _ensure_poller(inp: TrackingInput) -> None:
        await workflow.execute_activity_method(
            TrackingSteps.ensure_carrier_poller,
            EnsurePollerInput(carrier=inp.carrier, interval=inp.poll_interval, give_up_after=inp.give_up_after),
            start_to_close_timeout=timedelta(seconds=30),
        )

    async def _next_news(self, inp: TrackingInput, window_start: datetime) -> TrackingSnapshot:
        """The next thing a carrier said: a pushed/swept snapshot, or this workflow's own poll. Repeats in the
        inbox neither end a poll series nor restart the stall window. Raises _QuietWindow when the stall window
        passes without news."""
        self._drop_repeats()
        if self.inbox:
            return self.inbox.pop(0)
        if inp.batched:
            remaining = window_start + inp.stall_after - workflow.now()
            while remaining > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: bool(self.inbox), timeout=remaining)
                except TimeoutError:
                    break
                self._drop_repeats()
                if self.inbox:
                    return self.inbox.pop(0)
                remaining = window_start + inp.stall_after - workflow.now()
            raise _QuietWindow()
        # Infrequent poll: the activity fails while the carrier has nothing new, and its retry policy (fixed
        # interval, no attempt limit) is the poller — one activity in history per change. Its schedule-to-close
        # is the stall window: no news that long ends the attempt series.
        poll = workflow.start_activity_method(
            TrackingSteps.poll_parcel,
            PollInput(
                order_no=inp.order_no,
                carrier=inp.carrier,
                tracking_no=inp.tracking_no,
                known_status=self.status,
                known_events=self.known_events,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=inp.stall_after,
            retry_policy=RetryPolicy(
                initial_interval=inp.poll_interval,
                backoff_coefficient=1.0,
                maximum_interval=inp.poll_interval,
                non_retryable_error_types=[ErrorType.UNKNOWN_CARRIER],
            ),
        )
        while not poll.done():
            await workflow.wait_condition(lambda: poll.done() or bool(self.inbox))
            self._drop_repeats()
            if self.inbox and not poll.done():  # news came first: stop this series, the next asks from there
                poll.cancel()
                try:
                    self.inbox.append(await poll)  # it finished in the same breath: its answer is news too
                except (ActivityError, asyncio.CancelledError, TemporalCancelledError):
                    _stop_if_cancelled()  # the poll's own cancel is expected; the tracking's is not swallowed
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

    def _drop_repeats(self) -> None:
        self.inbox = [snapshot for snapshot in self.inbox if self._is_news(snapshot)]


def _stop_if_cancelled() -> None:
    """End the run when it was cancelled. Awaiting a signal to the order (or a poll being cancelled) when the cancel
    lands, the SDK finishes that operation and carries on, so a cancel can go unseen: the loop asks at every turn.
    Runs recorded before this check went on after such a cancel; the patch keeps their replays as they ran."""
    reason = workflow.cancellation_reason()
    if reason is not None and workflow.patched("tracking-honours-cancel"):
        raise asyncio.CancelledError(reason)
