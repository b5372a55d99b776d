"""The dispatch stage of OrderFulfillment: each warehouse's parcel handed to a carrier (the `dispatched` update),
one ShipmentTracking child per parcel, and the order moved along as its parcels move (never backwards), until
every parcel is signed for — or one is not, and the order fails.

What the workflow knows about carriers comes from its policy (the review step's result): which carrier codes
exist, which are polled in batches, which take a per-parcel push subscription and where.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.contract import ErrorType, NoticeKind, tracking_workflow_id
from workflows.order_state import FulfillmentState, Stop
from workflows.order_steps import OrderMoves, run_step
from workflows.steps import RECORDING, ShippingSteps
from workflows.tracking import ShipmentTracking

with workflow.unsafe.imports_passed_through():
    from domain.tracking import ORDER_PROGRESS, order_status_for
    from models.contracts import DispatchInput, DispatchRecord, ShipmentProgress, TrackingInput, TrackingResult
    from models.status import OrderStatus, Role, TrackingStatus

Tracker = workflow.ChildWorkflowHandle[Any, TrackingResult]

# What the customer hears when the order reaches these statuses on its parcels' account.
_NOTICE_KIND = {
    OrderStatus.OUT_FOR_DELIVERY: NoticeKind.OUT_FOR_DELIVERY,
    OrderStatus.DELIVERY_EXCEPTION: NoticeKind.DELIVERY_EXCEPTION,
    OrderStatus.DELIVERED: NoticeKind.DELIVERED,
}
# Since this patch the customer's dispatch notice is an automation (the default rule dispatched-tell-customer, on the
# parcel_dispatched event the shipping step writes): the business can change or switch it off without a release.
DISPATCH_NOTICE_BY_RULE = "dispatch-notice-by-rule"
# Since this one the rest of the order's notices that are news, not questions, are default rules too, on the order's
# status changes: backordered (ops), cancelled / rejected (the customer; finance when it was paid: refund), out for
# delivery, delivered, delivery exception (the customer; ops too), failed (ops). Questions stay here: the approval
# requests with their signed links, reminders, escalations, the prepayment request.
NOTICES_BY_RULE = "order-notices-by-rule"
# Dispatches the shipping step refuses: the update fails, the order keeps waiting for a correct one.
_REFUSED_DISPATCH = (ErrorType.DUPLICATE_TRACKING_NO, ErrorType.UNKNOWN_CARRIER)


async def await_dispatches(moves: OrderMoves) -> list[Tracker]:
    """Take each warehouse's dispatch in turn: record it (stock consumed, shipment row), start its tracking, tell
    the customer. DISPATCHED once the last warehouse's parcel has left."""
    state = moves.state
    trackers: list[Tracker] = []
    state.progress_in_order = workflow.patched("parcel-progress-in-order")
    while state.awaiting_dispatch:
        await moves.wait(lambda: bool(state.dispatch_queue), None)
        request = state.dispatch_queue[0]
        by_rule = workflow.patched(DISPATCH_NOTICE_BY_RULE)
        try:
            await run_step(
                RECORDING,
                ShippingSteps.record_dispatch,
                DispatchRecord(
                    order_no=state.order.order_no,
                    warehouse=request.warehouse,
                    carrier=request.carrier,
                    tracking_no=request.tracking_no,
                    at=workflow.now(),
                    announce=by_rule,
                ),
            )
        except ActivityError as err:
            cause = err.cause
            if not isinstance(cause, ApplicationError) or cause.type not in _REFUSED_DISPATCH:
                raise
            state.dispatch_refusals[request.tracking_no] = cause.message
            state.dispatch_queue.pop(0)
            continue
        state.awaiting_dispatch.remove(request.warehouse)
        state.parcels[request.tracking_no] = ShipmentProgress(
            carrier=request.carrier,
            tracking_no=request.tracking_no,
            status=TrackingStatus.PENDING,
            at=workflow.now(),
        )
        trackers.append(await _start_tracking(state, request))
        if not by_rule:
            await moves.notify(
                NoticeKind.DISPATCHED,
                "customer",
                key=f"dispatched:{request.tracking_no}",
                carrier=request.carrier,
                tracking_no=request.tracking_no,
            )
        state.dispatch_queue.pop(0)
        state.dispatches_processed.add(request.tracking_no)
        detail = f"{request.warehouse}: {request.carrier} {request.tracking_no}"
        await moves.transition(OrderStatus.DISPATCHED if not state.awaiting_dispatch else state.status, detail)
    return trackers


async def _start_tracking(state: FulfillmentState, request: DispatchInput) -> Tracker:
    policy = state.reviewed
    return await workflow.start_child_workflow(
        ShipmentTracking.run,
        TrackingInput(
            order_no=state.order.order_no,
            parent_workflow_id=workflow.info().workflow_id,
            carrier=request.carrier,
            tracking_no=request.tracking_no,
            poll_interval=policy.tracking_poll_interval,
            stall_after=policy.tracking_stall_after,
            give_up_after=policy.tracking_give_up_after,
            batched=request.carrier in policy.tracking_batch_carriers,
            push_callback=policy.tracking_push_callbacks.get(request.carrier),
        ),
        id=tracking_workflow_id(request.carrier, request.tracking_no),
    )


async def follow_parcels(moves: OrderMoves, trackers: list[Tracker]) -> None:
    """Show every parcel's progress on the order until all trackings have ended; FAILED unless all delivered."""
    state = moves.state
    pending = [asyncio.ensure_future(tracker) for tracker in trackers]
    while True:
        # Decided before acting: a tracker that ends while we record a transition gets its last word read.
        finished = all(task.done() for task in pending)
        while state.progress_queue:
            progress = state.progress_queue.pop(0)
            if state.parcels[progress.tracking_no].status != progress.status:
                state.parcels[progress.tracking_no] = progress
                await _show_parcels(moves)
        for tracking_no, task in zip(list(state.parcels), pending, strict=True):
            if not task.done():
                continue
            known = state.parcels[tracking_no]
            if task.exception() is not None:  # tracking itself failed: ops must look at this parcel
                if known.status != TrackingStatus.EXCEPTION:
                    state.parcels[tracking_no] = known.model_copy(update={"status": TrackingStatus.EXCEPTION})
                continue
            result = task.result()  # a finished tracker's result is the parcel's last word
            if known.status != result.status:
                state.parcels[tracking_no] = known.model_copy(update=result.model_dump())
        await _show_parcels(moves)
        if finished if state.progress_in_order else all(task.done() for task in pending):
            break
        seen = dict(state.parcels)
        await workflow.wait_condition(
            lambda seen=seen: (  # type: ignore[misc]
                state.parcels != seen or bool(state.progress_queue) or all(task.done() for task in pending)
            )
        )
    if state.status != OrderStatus.DELIVERED:
        raise Stop(OrderStatus.FAILED, "parcel not delivered: " + parcel_summary(state))


async def _show_parcels(moves: OrderMoves) -> None:
    """Move the order to what its parcels say, when that is news, and tell who needs to know."""
    state = moves.state
    shown = order_status_for(parcel.status for parcel in state.parcels.values())
    if shown != state.status and _moves_forward(state.status, shown):
        await moves.transition(shown, parcel_summary(state))
        await _notify_parcel_status(moves, shown)


def _moves_forward(current: OrderStatus, shown: OrderStatus) -> bool:
    if shown == OrderStatus.DELIVERY_EXCEPTION or current == OrderStatus.DELIVERY_EXCEPTION:
        return True
    if current not in ORDER_PROGRESS:
        return True
    return ORDER_PROGRESS.index(shown) > ORDER_PROGRESS.index(current)


def parcel_summary(state: FulfillmentState) -> str:
    return ", ".join(f"{p.carrier} {p.tracking_no}: {p.status}" for p in state.parcels.values())


async def _notify_parcel_status(moves: OrderMoves, shown: OrderStatus) -> None:
    kind = _NOTICE_KIND.get(shown)
    if kind is None or workflow.patched(NOTICES_BY_RULE):
        return
    state = moves.state
    signers = ", ".join(p.signed_by for p in state.parcels.values() if p.signed_by)
    tracking = ", ".join(state.parcels)
    if shown == OrderStatus.DELIVERY_EXCEPTION:  # ops must look at it, not only the customer
        await moves.notify(
            NoticeKind.DELIVERY_EXCEPTION, "role", key=f"ops_alert:{state.seq}", role=Role.OPS, tracking_no=tracking,
            status=parcel_summary(state),
        )  # fmt: skip
    await moves.notify(
        kind, "customer", key=f"{kind}:{state.seq}", tracking_no=tracking, signed_by=signers, status=shown.value
    )


def dispatch_refusal(state: FulfillmentState, dispatch: DispatchInput) -> ApplicationError | None:
    """Why the order cannot take this dispatch now, or None (the `dispatched` update's validator)."""
    order_no = state.order.order_no
    if state.cancel_request is not None:
        return ApplicationError(f"order {order_no} is being cancelled", type=ErrorType.NOT_AWAITING)
    known = state.policy.carriers if state.policy else []
    if known and dispatch.carrier not in known:
        return ApplicationError(
            f"unknown carrier {dispatch.carrier} (known: {', '.join(known)})", type=ErrorType.INVALID
        )
    queued = {request.warehouse for request in state.dispatch_queue}
    if dispatch.warehouse not in state.awaiting_dispatch or dispatch.warehouse in queued:
        waiting = ", ".join(state.awaiting_dispatch) or "none"
        return ApplicationError(
            f"order {order_no} awaits no dispatch from {dispatch.warehouse} "
            f"(status {state.status.value}; awaiting: {waiting})",
            type=ErrorType.NOT_AWAITING,
        )
    if dispatch.tracking_no in state.parcels or any(
        q.tracking_no == dispatch.tracking_no for q in state.dispatch_queue
    ):
        return ApplicationError(
            f"tracking number {dispatch.tracking_no} is already used on this order", type=ErrorType.NOT_AWAITING
        )
    return None
