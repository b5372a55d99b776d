"""OrderFulfillment: one sales order from intake to signed receipt. Sequences, waits and compensates only.

The journey reads top to bottom in `_fulfil`: validate → review → credit → payment and approvals (approval.py) →
allocate (backorder until restocked) → pick lists → dispatch and parcels (dispatch.py) → COMPLETED. The run's
state is one dataclass (order_state.py); every status change goes through `OrderMoves.transition` (read model row
and event, search attribute). Human input arrives as Updates whose validators refuse what the order cannot take
right now and whose handlers answer once the workflow has acted on it. A cancel is checked after every step;
compensation runs in reverse (void pick lists, release stock, refund notice); a paid order that stops starts its
RefundPayment (refund.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ParentClosePolicy

from workflows import approval, contract, dispatch, refund
from workflows.contract import ErrorType, NoticeKind, Query, Signal, Update
from workflows.order_state import FulfillmentState, Level, Stop
from workflows.order_steps import OrderMoves, run_step
from workflows.steps import (
    ALLOCATING,
    CHECKING,
    COMPENSATING,
    RECORDING,
    CreditSteps,
    InventorySteps,
    PickingSteps,
    RecordSteps,
    ReviewSteps,
    ValidationSteps,
)

with workflow.unsafe.imports_passed_through():
    from models.contracts import (
        AllocateInput,
        CancelInput,
        CreditInput,
        DecisionInput,
        DispatchInput,
        FulfillmentInput,
        FulfillmentResult,
        OrderRef,
        OrderState,
        PaymentInput,
        PickListsInput,
        RefundInput,
        RegisterOrderInput,
        RestockInput,
        ReviewInput,
        ShipmentProgress,
    )
    from models.order import PaymentMethod
    from models.status import CANCELLABLE_STATUSES, TERMINAL_STATUSES, OrderStatus, Role


@workflow.defn(name=contract.ORDER_WORKFLOW)
class OrderFulfillment:
    @workflow.init
    def __init__(self, inp: FulfillmentInput) -> None:
        self.run_state = FulfillmentState(order=inp.order, paid=inp.order.payment.paid)
        self.moves = OrderMoves(self.run_state)

    # --- the journey -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: FulfillmentInput) -> FulfillmentResult:
        state = self.run_state
        await run_step(
            RECORDING, RecordSteps.register_order, RegisterOrderInput(order=state.order, received_at=workflow.now())
        )
        try:
            await self._fulfil(inp)
        except Stop as stop:
            await self._compensate(stop)
        except asyncio.CancelledError:
            # Cancelled from Temporal itself (UI, CLI): compensate like any cancel, then end normally.
            await self._compensate(Stop(OrderStatus.CANCELLED, "cancelled in Temporal by an operator"))
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):  # the activity was cancelled with the workflow
                await self._compensate(Stop(OrderStatus.CANCELLED, "cancelled in Temporal by an operator"))
            else:  # a step failed for good (non-retryable): give back what the order holds, record why
                await self._compensate(Stop(OrderStatus.FAILED, f"step failed: {err.cause or err}"))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return FulfillmentResult(order_no=state.order.order_no, status=state.status, reasons=state.reasons)

    async def _fulfil(self, inp: FulfillmentInput) -> None:
        state, moves, order = self.run_state, self.moves, self.run_state.order
        validation = await run_step(CHECKING, ValidationSteps.validate_order, inp)
        if validation.reasons:
            raise Stop(OrderStatus.REJECTED, "; ".join(validation.reasons), validation.reasons)
        review = await run_step(
            CHECKING, ReviewSteps.review_order, ReviewInput(order=order, customer_new=validation.customer_new)
        )
        policy = state.policy = review.policy
        state.fired = list(review.fired)
        state.allow_split = policy.allow_split if review.allocation is None else review.allocation == "split"
        state.lot_order = review.lot_order or policy.lot_order
        prepay = review.prepay_required or order.payment.method == PaymentMethod.PREPAID
        levels = [Level(i, role) for i, role in enumerate(review.approval_roles, start=1)]
        if not review.skip_finance and not prepay:
            credit = await run_step(
                CHECKING,
                CreditSteps.check_credit,
                CreditInput(order_no=order.order_no, customer_id=order.customer_id, total=order.total),
            )
            if credit.hold:
                why = f"exposure {credit.exposure} over limit {credit.limit}"
                levels = approval.with_credit_hold(state, levels, why)
        moves.checkpoint()

        if prepay and not state.paid:
            await approval.await_payment(moves)
        for level in levels:
            await approval.await_decision(moves, level)
        await moves.transition(OrderStatus.APPROVED)

        await self._allocate()
        warehouses = await run_step(
            RECORDING,
            PickingSteps.issue_pick_lists,
            PickListsInput(order_no=order.order_no, allocations=state.allocations),
        )
        state.pick_lists_issued = True
        state.awaiting_dispatch = list(warehouses)
        await moves.transition(OrderStatus.PICKING, "pick lists issued: " + ", ".join(warehouses))

        trackers = await dispatch.await_dispatches(moves)
        await dispatch.follow_parcels(moves, trackers)
        await moves.transition(OrderStatus.COMPLETED)

    async def _allocate(self) -> None:
        """Lock the whole order's stock, or wait as BACKORDERED for a restock (or the periodic re-check)."""
        state, moves, order = self.run_state, self.moves, self.run_state.order
        request = AllocateInput(
            order_no=order.order_no,
            ship_to_region=order.ship_to.region,
            lines=[(i, line.sku, line.qty) for i, line in enumerate(order.lines, start=1)],
            allow_split=state.allow_split,
            lot_order=state.lot_order,
        )
        give_up = workflow.now() + state.reviewed.backorder_deadline
        while True:
            # Cleared before each look at stock, so a restock signalled at any later point (even while the
            # backorder is still being recorded) triggers another look.
            state.restock_requested = False
            outcome = await run_step(ALLOCATING, InventorySteps.allocate_stock, request)
            state.allocation_attempts += 1
            moves.checkpoint()
            if outcome.allocations:
                state.allocations = outcome.allocations
                parts = [f"{a.qty}x{a.sku}@{a.warehouse}/{a.lot}" for a in outcome.allocations]
                await moves.transition(OrderStatus.ALLOCATED, ", ".join(parts))
                return
            shortages = ", ".join(f"{sku} short {qty}" for sku, qty in sorted(outcome.shortages.items()))
            if state.status != OrderStatus.BACKORDERED:
                await moves.transition(OrderStatus.BACKORDERED, shortages)
                if not workflow.patched(dispatch.NOTICES_BY_RULE):
                    await moves.notify(NoticeKind.BACKORDERED, "role", role=Role.OPS, shortages=shortages)
            remaining = give_up - workflow.now()
            if remaining <= timedelta(0):
                raise Stop(OrderStatus.CANCELLED, f"backorder deadline passed ({shortages})")
            await moves.wait(lambda: state.restock_requested, min(remaining, state.reviewed.backorder_recheck))

    async def _compensate(self, stop: Stop) -> None:
        """Give back what the order holds, in reverse, then record and announce how it ended."""
        state, moves = self.run_state, self.moves
        ref = OrderRef(order_no=state.order.order_no)
        if state.pick_lists_issued:
            await run_step(COMPENSATING, PickingSteps.void_pick_lists, ref)
        if stop.status == OrderStatus.CANCELLED or (state.allocations and not state.parcels):
            # Release even when nothing is known to be allocated: a lock may have committed just before a
            # cancel was seen. Releasing nothing is a no-op.
            await run_step(COMPENSATING, InventorySteps.release_stock, ref)
        by_rule = workflow.patched(dispatch.NOTICES_BY_RULE)  # the default rules tell finance, the customer and ops
        paid = state.paid or state.payment is not None
        if not by_rule and paid and stop.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            await moves.notify(NoticeKind.REFUND, "role", role=Role.FINANCE, reason=stop.reason)
        state.reasons.extend(stop.reasons)
        await moves.transition(stop.status, stop.reason, reasons=state.reasons)
        if paid and stop.status in refund.REFUNDED_ENDS and workflow.patched(refund.REFUND_THROUGH_PROVIDER):
            # The customer's money goes back by its own workflow, which outlives this one (finance may take days
            # to approve a large refund; the provider may be down for a while).
            await workflow.start_child_workflow(
                refund.RefundPayment.run,
                RefundInput(order_no=state.order.order_no, reason=stop.reason),
                id=contract.refund_workflow_id(state.order.order_no),
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        if by_rule:
            return
        if stop.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            await moves.notify(NoticeKind(stop.status.value.lower()), "customer", reason=stop.reason)
        else:
            await moves.notify(NoticeKind.DELIVERY_EXCEPTION, "role", role=Role.OPS, status=stop.reason)

    # --- messages --------------------------------------------------------------------------------

    @workflow.query(name=Query.STATE)
    def state(self) -> OrderState:
        return self.run_state.view()

    @workflow.update(name=Update.DECIDE)
    async def decide(self, decision: DecisionInput) -> OrderState:
        state = self.run_state
        state.decisions.append(decision)
        taken = state.decisions_taken
        # Answer once the workflow has acted on the decision: the next status is already set.
        await workflow.wait_condition(lambda: approval.decided(state, taken))
        return state.view()

    @decide.validator
    def _validate_decision(self, decision: DecisionInput) -> None:
        _refuse(approval.decision_refusal(self.run_state, decision))

    @workflow.update(name=Update.PAYMENT_RECEIVED)
    async def payment_received(self, payment: PaymentInput) -> OrderState:
        state = self.run_state
        state.payment = payment
        await workflow.wait_condition(lambda: state.paid or state.status in TERMINAL_STATUSES)
        return state.view()

    @payment_received.validator
    def _validate_payment(self, payment: PaymentInput) -> None:
        _refuse(approval.payment_refusal(self.run_state, payment))

    @workflow.update(name=Update.DISPATCHED)
    async def dispatched(self, request: DispatchInput) -> OrderState:
        state = self.run_state
        state.dispatch_queue.append(request)
        number = request.tracking_no
        await workflow.wait_condition(
            lambda: (
                number in state.dispatches_processed
                or number in state.dispatch_refusals
                or state.status in TERMINAL_STATUSES
            )
        )
        if number in state.dispatch_refusals:
            raise ApplicationError(state.dispatch_refusals.pop(number), type=ErrorType.DISPATCH_REFUSED)
        return state.view()

    @dispatched.validator
    def _validate_dispatch(self, request: DispatchInput) -> None:
        _refuse(dispatch.dispatch_refusal(self.run_state, request))

    @workflow.update(name=Update.CANCEL)
    async def cancel(self, request: CancelInput) -> OrderState:
        state = self.run_state
        state.cancel_request = request
        await workflow.wait_condition(lambda: state.status in TERMINAL_STATUSES)
        return state.view()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        state = self.run_state
        order_no = state.order.order_no
        if state.cancel_request is not None:
            raise ApplicationError(f"order {order_no} is already being cancelled", type=ErrorType.NOT_AWAITING)
        if state.status not in CANCELLABLE_STATUSES or state.dispatch_queue or state.parcels:
            raise ApplicationError(
                f"order {order_no} can no longer be cancelled (status {state.status.value})",
                type=ErrorType.NOT_AWAITING,
            )

    @workflow.signal(name=Signal.RESTOCKED)
    def restocked(self, _restock: RestockInput) -> None:
        self.run_state.restock_requested = True

    @workflow.signal(name=Signal.CREDIT_RECHECK)
    def credit_recheck(self) -> None:
        self.run_state.credit_recheck = True

    @workflow.signal(name=Signal.SHIPMENT_PROGRESS)
    def shipment_progress(self, progress: ShipmentProgress) -> None:
        state = self.run_state
        known = state.parcels.get(progress.tracking_no)
        if known is None:
            workflow.logger.warning("progress for unknown parcel %s ignored", progress.tracking_no)
            return
        if state.progress_in_order:
            state.progress_queue.append(progress)
        elif known.status != progress.status:
            state.parcels[progress.tracking_no] = progress


def _refuse(refusal: ApplicationError | None) -> None:
    if refusal is not None:
        raise refusal
