"""OrderFulfillment: one sales order from intake to signed receipt. Sequences, waits and compensates only.

Every status change goes through `_transition` (read model row + event, search attribute upsert). Human
input arrives as Updates whose validators refuse what the order cannot take right now, and whose handlers
answer once the workflow has acted on the input. Cancellation is checked after every step; compensation
runs in reverse (void pick lists, release stock, refund notice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from domain.approvals import refusal_reason
    from domain.tracking import ORDER_PROGRESS, order_status_for
    from models.allocation import Allocation, LotOrder
    from models.contracts import (
        AllocateInput,
        ApprovalAudit,
        CancelInput,
        CreditInput,
        DecisionInput,
        DispatchInput,
        DispatchRecord,
        FulfillmentInput,
        FulfillmentResult,
        NotifyInput,
        OrderRef,
        OrderState,
        PaymentInput,
        PendingApproval,
        PickListsInput,
        Policy,
        RegisterOrderInput,
        RestockInput,
        ReviewInput,
        ShipmentProgress,
        TrackingInput,
        TrackingResult,
        TransitionInput,
    )
    from models.order import PaymentMethod
    from models.status import (
        CANCELLABLE_STATUSES,
        TERMINAL_STATUSES,
        OrderStatus,
        Role,
        TrackingStatus,
    )

from workflows import contract
from workflows.contract import ErrorType, Query, Signal, Update, tracking_workflow_id
from workflows.steps import (
    CreditSteps,
    InventorySteps,
    NotifySteps,
    PickingSteps,
    RecordSteps,
    ReviewSteps,
    ShippingSteps,
    ValidationSteps,
)
from workflows.tracking import ShipmentTracking

# Who hears about an approval that has waited past its reminder.
ESCALATE_TO = {Role.FINANCE: Role.FINANCE_DIRECTOR, Role.FINANCE_DIRECTOR: Role.OPS}

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
DB_TIMEOUT = timedelta(seconds=30)


class _Stop(Exception):
    """Ends the happy path early: the order is cancelled (or rejected) and compensation runs."""

    def __init__(self, status: OrderStatus, reason: str, reasons: list[str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.reasons = reasons or [reason]


@dataclass
class _Level:
    index: int
    role: Role
    credit_hold: bool = False


@workflow.defn(name=contract.ORDER_WORKFLOW)
class OrderFulfillment:
    @workflow.init
    def __init__(self, inp: FulfillmentInput) -> None:
        self.order = inp.order
        self.status = OrderStatus.RECEIVED
        self.seq = 1  # RECEIVED is event 1, written by register_order
        self.reasons: list[str] = []
        self.policy = Policy()
        self.paid = inp.order.payment.paid
        self.payment: PaymentInput | None = None
        self.level: _Level | None = None
        self.deciders: list[str] = []
        self.decisions: list[DecisionInput] = []
        self.decisions_taken = 0
        self.decided_at_seq = 0
        self.cancel_request: CancelInput | None = None
        self.restock_requested = False
        self.allow_split = True
        self.lot_order: LotOrder = "fifo"
        self.allocation_attempts = 0
        self.allocations: list[Allocation] = []
        self.pick_lists_issued = False
        self.awaiting_dispatch: list[str] = []
        self.dispatch_queue: list[DispatchInput] = []
        self.dispatch_refusals: dict[str, str] = {}
        self.dispatches_processed: set[str] = set()
        self.parcels: dict[str, ShipmentProgress] = {}
        # Progress reports, handled one at a time so that no stage is skipped (a failed attempt between two
        # delivery runs must flag the order even when both reports arrive together). Off in older histories.
        self.progress_queue: list[ShipmentProgress] = []
        self.progress_in_order = False

    # --- the journey -----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: FulfillmentInput) -> FulfillmentResult:
        await self._act(RecordSteps.register_order, RegisterOrderInput(order=self.order, received_at=workflow.now()))
        try:
            await self._fulfil(inp)
        except _Stop as stop:
            await self._compensate(stop)
        except asyncio.CancelledError:
            # Cancelled from Temporal itself (UI, CLI): compensate like any cancel, then end normally.
            await self._compensate(_Stop(OrderStatus.CANCELLED, "cancelled in Temporal by an operator"))
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):  # the activity was cancelled with the workflow
                await self._compensate(_Stop(OrderStatus.CANCELLED, "cancelled in Temporal by an operator"))
            else:  # a step failed for good (non-retryable): give back what the order holds, record why
                await self._compensate(_Stop(OrderStatus.FAILED, f"step failed: {err.cause or err}"))
        await workflow.wait_condition(workflow.all_handlers_finished)
        return FulfillmentResult(order_no=self.order.order_no, status=self.status, reasons=self.reasons)

    async def _fulfil(self, inp: FulfillmentInput) -> None:
        order = self.order
        validation = await self._act(ValidationSteps.validate_order, inp)
        if validation.reasons:
            raise _Stop(OrderStatus.REJECTED, "; ".join(validation.reasons), validation.reasons)
        review = await self._act(
            ReviewSteps.review_order, ReviewInput(order=order, customer_new=validation.customer_new)
        )
        self.policy = review.policy
        self.allow_split = self.policy.allow_split if review.allocation is None else review.allocation == "split"
        self.lot_order = review.lot_order or self.policy.lot_order
        prepay = review.prepay_required or order.payment.method == PaymentMethod.PREPAID
        levels = [_Level(i, role) for i, role in enumerate(review.approval_roles, start=1)]
        if not review.skip_finance and not prepay:
            credit = await self._act(
                CreditSteps.check_credit,
                CreditInput(order_no=order.order_no, customer_id=order.customer_id, total=order.total),
            )
            if credit.hold:
                levels = self._with_credit_hold(levels, f"exposure {credit.exposure} over limit {credit.limit}")
        self._checkpoint()

        if prepay and not self.paid:
            await self._await_payment()
        for level in levels:
            await self._await_decision(level)
        await self._transition(OrderStatus.APPROVED)

        await self._allocate()
        warehouses = await self._act(
            PickingSteps.issue_pick_lists, PickListsInput(order_no=order.order_no, allocations=self.allocations)
        )
        self.pick_lists_issued = True
        self.awaiting_dispatch = list(warehouses)
        await self._transition(OrderStatus.PICKING, "pick lists issued: " + ", ".join(warehouses))

        trackers = await self._await_dispatches()
        await self._follow_parcels(trackers)
        await self._transition(OrderStatus.COMPLETED)

    def _with_credit_hold(self, levels: list[_Level], why: str) -> list[_Level]:
        """A credit hold needs finance: the first finance level carries it, or one is added in front."""
        self.reasons.append(f"credit hold: {why}")
        for level in levels:
            if level.role == Role.FINANCE:
                level.credit_hold = True
                return levels
        held = [_Level(1, Role.FINANCE, credit_hold=True)]
        return held + [_Level(level.index + 1, level.role) for level in levels]

    async def _await_payment(self) -> None:
        await self._transition(OrderStatus.AWAITING_PAYMENT)
        await self._notify("payment_requested", "customer")
        paid = await self._wait(lambda: self.payment is not None, self.policy.payment_deadline)
        if not paid:
            raise _Stop(OrderStatus.CANCELLED, "payment deadline passed")
        self.paid = True
        reference = self.payment.reference if self.payment else ""
        await self._transition(self.status, f"payment received {reference}".strip(), paid=True)

    async def _await_decision(self, level: _Level) -> None:
        self.level = level
        status = OrderStatus.CREDIT_HOLD if level.credit_hold else OrderStatus.AWAITING_APPROVAL
        await self._transition(status, f"level {level.index}: {level.role.value}")
        await self._notify(f"approval_needed:{level.index}", "role", role=level.role, kind="approval_needed")
        started = workflow.now()
        deadline = started + self.policy.approval_deadline
        reminder_at = started + self.policy.approval_reminder
        reminded = reminder_at >= deadline
        while not self.decisions:
            now = workflow.now()
            if now >= deadline:
                raise _Stop(OrderStatus.CANCELLED, f"no {level.role.value} decision before the approval deadline")
            if not reminded and now >= reminder_at:
                reminded = True
                waited = str(now - started)
                await self._notify(
                    f"approval_reminder:{level.index}", "role", role=level.role, kind="approval_reminder", waited=waited
                )
                if workflow.patched("approval-escalation"):
                    await self._notify(
                        f"approval_escalated:{level.index}",
                        "role",
                        role=ESCALATE_TO.get(level.role, Role.OPS),
                        kind="approval_escalated",
                        waited=waited,
                        level_role=level.role.value,
                    )
                continue
            wake = deadline if reminded else reminder_at
            await self._wait(lambda: bool(self.decisions), wake - now)
        decision = self.decisions[0]
        self.decided_at_seq = self.seq
        await self._act(
            RecordSteps.record_approval,
            ApprovalAudit(
                order_no=self.order.order_no,
                level=level.index,
                role=level.role,
                by=decision.by,
                decision=decision.decision,
                at=workflow.now(),
                comment=decision.comment,
            ),
        )
        self.deciders.append(decision.by)
        self.decisions.pop(0)
        self.level = None
        if decision.decision == "reject":
            raise _Stop(OrderStatus.REJECTED, f"rejected by {decision.by} ({level.role.value}): {decision.comment}")
        self.decisions_taken += 1

    async def _allocate(self) -> None:
        order = self.order
        request = AllocateInput(
            order_no=order.order_no,
            ship_to_region=order.ship_to.region,
            lines=[(i, line.sku, line.qty) for i, line in enumerate(order.lines, start=1)],
            allow_split=self.allow_split,
            lot_order=self.lot_order,
        )
        give_up = workflow.now() + self.policy.backorder_deadline
        while True:
            # Cleared before each look at stock, so a restock signalled at any later point (even while the
            # backorder is still being recorded) triggers another look.
            self.restock_requested = False
            outcome = await self._act(InventorySteps.allocate_stock, request)
            self.allocation_attempts += 1
            self._checkpoint()
            if outcome.allocations:
                self.allocations = outcome.allocations
                parts = [f"{a.qty}x{a.sku}@{a.warehouse}/{a.lot}" for a in outcome.allocations]
                await self._transition(OrderStatus.ALLOCATED, ", ".join(parts))
                return
            shortages = ", ".join(f"{sku} short {qty}" for sku, qty in sorted(outcome.shortages.items()))
            if self.status != OrderStatus.BACKORDERED:
                await self._transition(OrderStatus.BACKORDERED, shortages)
                await self._notify("backordered", "role", role=Role.OPS, shortages=shortages)
            remaining = give_up - workflow.now()
            if remaining <= timedelta(0):
                raise _Stop(OrderStatus.CANCELLED, f"backorder deadline passed ({shortages})")
            await self._wait(lambda: self.restock_requested, min(remaining, self.policy.backorder_recheck))

    async def _await_dispatches(self) -> list[workflow.ChildWorkflowHandle[Any, TrackingResult]]:
        trackers: list[workflow.ChildWorkflowHandle[Any, TrackingResult]] = []
        self.progress_in_order = workflow.patched("parcel-progress-in-order")
        while self.awaiting_dispatch:
            await self._wait(lambda: bool(self.dispatch_queue), None)
            request = self.dispatch_queue[0]
            try:
                await self._act(
                    ShippingSteps.record_dispatch,
                    DispatchRecord(
                        order_no=self.order.order_no,
                        warehouse=request.warehouse,
                        carrier=request.carrier,
                        tracking_no=request.tracking_no,
                        at=workflow.now(),
                    ),
                )
            except ActivityError as err:
                cause = err.cause
                if not isinstance(cause, ApplicationError) or cause.type not in (
                    ErrorType.DUPLICATE_TRACKING_NO,
                    ErrorType.UNKNOWN_CARRIER,
                ):
                    raise
                # Another order's parcel number: refuse this dispatch, keep waiting for a correct one.
                self.dispatch_refusals[request.tracking_no] = cause.message
                self.dispatch_queue.pop(0)
                continue
            self.awaiting_dispatch.remove(request.warehouse)
            self.parcels[request.tracking_no] = ShipmentProgress(
                carrier=request.carrier,
                tracking_no=request.tracking_no,
                status=TrackingStatus.PENDING,
                at=workflow.now(),
            )
            trackers.append(
                await workflow.start_child_workflow(
                    ShipmentTracking.run,
                    TrackingInput(
                        order_no=self.order.order_no,
                        parent_workflow_id=workflow.info().workflow_id,
                        carrier=request.carrier,
                        tracking_no=request.tracking_no,
                        poll_interval=self.policy.tracking_poll_interval,
                        stall_after=self.policy.tracking_stall_after,
                        give_up_after=self.policy.tracking_give_up_after,
                        batched=request.carrier in self.policy.tracking_batch_carriers,
                        push_callback=self.policy.tracking_push_callbacks.get(request.carrier),
                    ),
                    id=tracking_workflow_id(request.carrier, request.tracking_no),
                )
            )
            await self._notify(
                f"dispatched:{request.tracking_no}",
                "customer",
                kind="dispatched",
                carrier=request.carrier,
                tracking_no=request.tracking_no,
            )
            self.dispatch_queue.pop(0)
            self.dispatches_processed.add(request.tracking_no)
            detail = f"{request.warehouse}: {request.carrier} {request.tracking_no}"
            await self._transition(OrderStatus.DISPATCHED if not self.awaiting_dispatch else self.status, detail)
        return trackers

    async def _follow_parcels(self, trackers: list[workflow.ChildWorkflowHandle[Any, TrackingResult]]) -> None:
        pending = [asyncio.ensure_future(tracker) for tracker in trackers]
        while True:
            # Decided before acting: a tracker that ends while we record a transition gets its last word read.
            finished = all(task.done() for task in pending)
            while self.progress_queue:
                progress = self.progress_queue.pop(0)
                if self.parcels[progress.tracking_no].status != progress.status:
                    self.parcels[progress.tracking_no] = progress
                    await self._show_parcels()
            for tracking_no, task in zip(list(self.parcels), pending, strict=True):
                if not task.done():
                    continue
                known = self.parcels[tracking_no]
                if task.exception() is not None:  # tracking itself failed: ops must look at this parcel
                    if known.status != TrackingStatus.EXCEPTION:
                        self.parcels[tracking_no] = known.model_copy(update={"status": TrackingStatus.EXCEPTION})
                    continue
                result = task.result()  # a finished tracker's result is the parcel's last word
                if known.status != result.status:
                    self.parcels[tracking_no] = known.model_copy(update=result.model_dump())
            await self._show_parcels()
            if finished if self.progress_in_order else all(task.done() for task in pending):
                break
            seen = dict(self.parcels)
            await workflow.wait_condition(
                lambda seen=seen: (
                    self.parcels != seen  # type: ignore[misc]
                    or bool(self.progress_queue)
                    or all(task.done() for task in pending)
                )
            )
        if self.status != OrderStatus.DELIVERED:
            raise _Stop(OrderStatus.FAILED, "parcel not delivered: " + self._parcel_summary())

    async def _show_parcels(self) -> None:
        """Move the order to what its parcels say, when that is news, and tell who needs to know."""
        shown = order_status_for(parcel.status for parcel in self.parcels.values())
        if shown != self.status and self._moves_forward(shown):
            await self._transition(shown, self._parcel_summary())
            await self._notify_parcel_status(shown)

    def _moves_forward(self, shown: OrderStatus) -> bool:
        if shown == OrderStatus.DELIVERY_EXCEPTION or self.status == OrderStatus.DELIVERY_EXCEPTION:
            return True
        if self.status not in ORDER_PROGRESS:
            return True
        return ORDER_PROGRESS.index(shown) > ORDER_PROGRESS.index(self.status)

    def _parcel_summary(self) -> str:
        return ", ".join(f"{p.carrier} {p.tracking_no}: {p.status}" for p in self.parcels.values())

    async def _notify_parcel_status(self, shown: OrderStatus) -> None:
        kinds = {
            OrderStatus.OUT_FOR_DELIVERY: "out_for_delivery",
            OrderStatus.DELIVERY_EXCEPTION: "delivery_exception",
            OrderStatus.DELIVERED: "delivered",
        }
        kind = kinds.get(shown)
        if kind is None:
            return
        signers = ", ".join(p.signed_by for p in self.parcels.values() if p.signed_by)
        tracking = ", ".join(self.parcels)
        if shown == OrderStatus.DELIVERY_EXCEPTION:  # ops must look at it, not only the customer
            await self._notify(
                f"ops_alert:{self.seq}", "role", role=Role.OPS, kind="delivery_exception", tracking_no=tracking,
                status=self._parcel_summary(),
            )  # fmt: skip
        await self._notify(
            f"{kind}:{self.seq}", "customer", kind=kind, tracking_no=tracking, signed_by=signers, status=shown.value
        )

    # --- compensation ----------------------------------------------------------------------------

    async def _compensate(self, stop: _Stop) -> None:
        if self.pick_lists_issued:
            await self._act(PickingSteps.void_pick_lists, OrderRef(order_no=self.order.order_no))
        if stop.status == OrderStatus.CANCELLED or (self.allocations and not self.parcels):
            # Release even when nothing is known to be allocated: a lock may have committed just before a
            # cancel was seen. Releasing nothing is a no-op.
            await self._act(InventorySteps.release_stock, OrderRef(order_no=self.order.order_no))
        if (self.paid or self.payment is not None) and stop.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            await self._notify("refund", "role", role=Role.FINANCE, reason=stop.reason)
        self.reasons.extend(stop.reasons)
        await self._transition(stop.status, stop.reason, reasons=self.reasons)
        if stop.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
            await self._notify(stop.status.value.lower(), "customer", reason=stop.reason)
        else:
            await self._notify("delivery_exception", "role", role=Role.OPS, status=stop.reason)

    # --- plumbing --------------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        if self.cancel_request is not None:
            who = f" by {self.cancel_request.by}" if self.cancel_request.by else ""
            raise _Stop(OrderStatus.CANCELLED, f"cancelled{who}: {self.cancel_request.reason}")

    async def _wait(self, done: Callable[[], bool], limit: timedelta | None) -> bool:
        """Wait for `done` or a cancel; True when done, False on timeout. A cancel raises _Stop."""
        try:
            await workflow.wait_condition(lambda: done() or self.cancel_request is not None, timeout=limit)
        except TimeoutError:
            self._checkpoint()
            return False
        self._checkpoint()
        return True

    async def _act(self, method: Callable[..., Any], arg: Any) -> Any:
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=DB_RETRY
        )

    async def _transition(
        self, status: OrderStatus, detail: str = "", *, paid: bool | None = None, reasons: list[str] | None = None
    ) -> None:
        self.status = status
        self.seq += 1
        workflow.upsert_search_attributes([contract.ORDER_STATUS.value_set(status.value)])
        await self._act(
            RecordSteps.record_transition,
            TransitionInput(
                order_no=self.order.order_no,
                seq=self.seq,
                status=status,
                at=workflow.now(),
                detail=detail,
                paid=paid,
                reasons=reasons,
            ),
        )

    async def _notify(
        self,
        key: str,
        audience: Literal["customer", "role"],
        *,
        role: Role | None = None,
        kind: str | None = None,
        **variables: str,
    ) -> None:
        await self._act(
            NotifySteps.notify,
            NotifyInput(
                key=f"{self.order.order_no}:{key}",
                order_no=self.order.order_no,
                kind=kind or key,
                audience=audience,
                role=role,
                variables=variables,
            ),
        )

    # --- messages --------------------------------------------------------------------------------

    @workflow.query(name=Query.STATE)
    def state(self) -> OrderState:
        pending = None
        if self.level is not None:
            pending = PendingApproval(level=self.level.index, role=self.level.role, credit_hold=self.level.credit_hold)
        return OrderState(
            order_no=self.order.order_no,
            status=self.status,
            pending_approval=pending,
            awaiting_dispatch=list(self.awaiting_dispatch),
            shipments=list(self.parcels.values()),
            reasons=list(self.reasons),
            allocation_attempts=self.allocation_attempts,
        )

    @workflow.update(name=Update.DECIDE)
    async def decide(self, decision: DecisionInput) -> OrderState:
        self.decisions.append(decision)
        taken = self.decisions_taken
        # Answer once the workflow has acted on the decision: the next status is already set.
        await workflow.wait_condition(
            lambda: (
                (self.decisions_taken > taken and self.seq > self.decided_at_seq) or self.status in TERMINAL_STATUSES
            )
        )
        return self.state()

    @decide.validator
    def _validate_decision(self, decision: DecisionInput) -> None:
        """Runs after the worker's DecisionGuard verified the API's signature (workflows/decision_guard.py).
        Refusal types tell the API which answer to give: NotAwaiting → 409, Forbidden → 403, Invalid → 422."""
        level = self.level
        if level is None or self.status not in (OrderStatus.AWAITING_APPROVAL, OrderStatus.CREDIT_HOLD):
            raise ApplicationError(
                f"order {self.order.order_no} is not awaiting a decision (status {self.status.value})",
                type=ErrorType.NOT_AWAITING,
            )
        if self.decisions:
            raise ApplicationError(
                f"a decision on level {level.index} is already being processed", type=ErrorType.NOT_AWAITING
            )
        if decision.level != level.index:
            raise ApplicationError(
                f"the decision is for level {decision.level} but the order awaits level {level.index}",
                type=ErrorType.NOT_AWAITING,
            )
        if decision.decision == "reject" and not decision.comment.strip():
            raise ApplicationError("a rejection needs a comment", type=ErrorType.INVALID)
        why = refusal_reason(
            level_role=level.role,
            decider=decision.by,
            decider_role=decision.role,
            sales_rep=self.order.sales_rep,
            earlier_deciders=self.deciders,
        )
        if why:
            raise ApplicationError(why, type=ErrorType.FORBIDDEN)

    @workflow.update(name=Update.PAYMENT_RECEIVED)
    async def payment_received(self, payment: PaymentInput) -> OrderState:
        self.payment = payment
        await workflow.wait_condition(lambda: self.paid or self.status in TERMINAL_STATUSES)
        return self.state()

    @payment_received.validator
    def _validate_payment(self, payment: PaymentInput) -> None:
        if self.status != OrderStatus.AWAITING_PAYMENT or self.payment is not None:
            raise ValueError(f"order {self.order.order_no} is not awaiting payment (status {self.status.value})")

    @workflow.update(name=Update.DISPATCHED)
    async def dispatched(self, dispatch: DispatchInput) -> OrderState:
        self.dispatch_queue.append(dispatch)
        number = dispatch.tracking_no
        await workflow.wait_condition(
            lambda: (
                number in self.dispatches_processed
                or number in self.dispatch_refusals
                or self.status in TERMINAL_STATUSES
            )
        )
        if number in self.dispatch_refusals:
            raise ApplicationError(self.dispatch_refusals.pop(number), type=ErrorType.DISPATCH_REFUSED)
        return self.state()

    @dispatched.validator
    def _validate_dispatch(self, dispatch: DispatchInput) -> None:
        if self.cancel_request is not None:
            raise ValueError(f"order {self.order.order_no} is being cancelled")
        known = self.policy.carriers
        if known and dispatch.carrier not in known:
            raise ApplicationError(
                f"unknown carrier {dispatch.carrier} (known: {', '.join(known)})", type=ErrorType.INVALID
            )
        queued = {request.warehouse for request in self.dispatch_queue}
        if dispatch.warehouse not in self.awaiting_dispatch or dispatch.warehouse in queued:
            waiting = ", ".join(self.awaiting_dispatch) or "none"
            raise ValueError(
                f"order {self.order.order_no} awaits no dispatch from {dispatch.warehouse} "
                f"(status {self.status.value}; awaiting: {waiting})"
            )
        if dispatch.tracking_no in self.parcels or any(
            q.tracking_no == dispatch.tracking_no for q in self.dispatch_queue
        ):
            raise ValueError(f"tracking number {dispatch.tracking_no} is already used on this order")

    @workflow.update(name=Update.CANCEL)
    async def cancel(self, request: CancelInput) -> OrderState:
        self.cancel_request = request
        await workflow.wait_condition(lambda: self.status in TERMINAL_STATUSES)
        return self.state()

    @cancel.validator
    def _validate_cancel(self, request: CancelInput) -> None:
        if self.cancel_request is not None:
            raise ValueError(f"order {self.order.order_no} is already being cancelled")
        if self.status not in CANCELLABLE_STATUSES or self.dispatch_queue or self.parcels:
            raise ValueError(f"order {self.order.order_no} can no longer be cancelled (status {self.status.value})")

    @workflow.signal(name=Signal.RESTOCKED)
    def restocked(self, _restock: RestockInput) -> None:
        self.restock_requested = True

    @workflow.signal(name=Signal.SHIPMENT_PROGRESS)
    def shipment_progress(self, progress: ShipmentProgress) -> None:
        known = self.parcels.get(progress.tracking_no)
        if known is None:
            workflow.logger.warning("progress for unknown parcel %s ignored", progress.tracking_no)
            return
        if self.progress_in_order:
            self.progress_queue.append(progress)
        elif known.status != progress.status:
            self.parcels[progress.tracking_no] = progress
