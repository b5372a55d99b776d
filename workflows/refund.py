"""RefundPayment (id `refund-<order_no>`): pay back a stopped paid order. Started by its OrderFulfillment when the
order ends cancelled, rejected or failed after it was paid (a child that outlives it).

open_refund records the refund (what we hold of the customer's for the order, credit notes for what it billed and
never delivered) and says whether it needs approval (over ORDERFLOW_REFUND_APPROVAL_OVER); if so the workflow waits
for finance's `decide` update — signed by the API and checked by the worker's DecisionGuard, like an order's
approval — with no deadline (it is finance's to-do until decided). Approved (or under the amount), the payment
provider is asked with the refund's idempotency key, retried while it is unreachable; a refusal is final and
leaves the refund for finance to make by hand. The refund made is booked in the ledger and the customer told.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows import contract
from workflows.contract import ErrorType, Query, Update
from workflows.order_steps import run_step
from workflows.steps import PAYING_OUT, RECORDING, RefundSteps

with workflow.unsafe.imports_passed_through():
    from domain.approvals import may_decide
    from models.contracts import (
        DecisionInput,
        RefundDecision,
        RefundFailure,
        RefundInput,
        RefundPayout,
        RefundView,
    )
    from models.status import OrderStatus, RefundState, Role

# OrderFulfillment starts a RefundPayment when a paid order ends so (runs before this patch: finance by hand).
REFUND_THROUGH_PROVIDER = "refund-through-provider"
REFUNDED_ENDS = frozenset({OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.FAILED})


@workflow.defn(name=contract.REFUND_WORKFLOW)
class RefundPayment:
    def __init__(self) -> None:
        self.view = RefundView(order_no="", state="opening")
        self.decision: DecisionInput | None = None

    @workflow.run
    async def run(self, inp: RefundInput) -> RefundView:
        opened = await run_step(RECORDING, RefundSteps.open_refund, inp)
        self._show(opened.state, amount=opened.amount, currency=opened.currency, needs_approval=opened.needs_approval)
        if opened.state != RefundState.AWAITING_APPROVAL and opened.state != RefundState.APPROVED:
            return self.view  # nothing to refund, or refunded (declined, failed) before
        if opened.state == RefundState.AWAITING_APPROVAL:
            await workflow.wait_condition(lambda: self.decision is not None)
            decision = self.decision
            assert decision is not None
            taken = RefundDecision(
                order_no=inp.order_no, decision=decision.decision, by=decision.by, role=decision.role,
                comment=decision.comment,
            )  # fmt: skip
            await run_step(RECORDING, RefundSteps.record_refund_decision, taken)
            if decision.decision == "reject":
                self._show(RefundState.DECLINED, decided_by=decision.by)
                await workflow.wait_condition(workflow.all_handlers_finished)  # the decide update answers first
                return self.view
            self._show(RefundState.APPROVED, decided_by=decision.by)
        payout = RefundPayout(
            order_no=inp.order_no, amount=opened.amount, currency=opened.currency,
            payment_reference=opened.payment_reference, reason=inp.reason,
        )  # fmt: skip
        try:
            paid = await workflow.execute_activity_method(
                RefundSteps.pay_out_refund, payout, start_to_close_timeout=PAYING_OUT.start_to_close,
                retry_policy=PAYING_OUT.retry,
            )  # fmt: skip
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.REFUND_REFUSED):
                raise
            await run_step(RECORDING, RefundSteps.fail_refund, RefundFailure(order_no=inp.order_no, why=cause.message))
            self._show(RefundState.FAILED)
            return self.view
        await run_step(RECORDING, RefundSteps.complete_refund, paid)
        self._show(RefundState.MADE)
        return self.view

    def _show(self, state: str, **fields: object) -> None:
        self.view = self.view.model_copy(update={"order_no": workflow.info().workflow_id.removeprefix("refund-"),
                                                 "state": state, **fields})  # fmt: skip

    @workflow.query(name=Query.STATE)
    def state(self) -> RefundView:
        return self.view

    @workflow.update(name=Update.DECIDE)
    async def decide(self, decision: DecisionInput) -> RefundView:
        self.decision = decision
        await workflow.wait_condition(lambda: self.view.state != RefundState.AWAITING_APPROVAL)
        return self.view

    @decide.validator
    def _check_decision(self, decision: DecisionInput) -> None:
        """After the DecisionGuard verified the API's signature: only while awaiting it, once, by finance."""
        if self.view.state != RefundState.AWAITING_APPROVAL or self.decision is not None:
            raise ApplicationError(
                f"the refund of order {self.view.order_no} is not awaiting a decision ({self.view.state})",
                type=ErrorType.NOT_AWAITING,
            )
        if decision.level != contract.REFUND_DECISION_LEVEL:
            raise ApplicationError(
                f"a refund's decision is level {contract.REFUND_DECISION_LEVEL}, not {decision.level}",
                type=ErrorType.NOT_AWAITING,
            )
        if not may_decide(decision.role, Role.FINANCE):
            raise ApplicationError(f"role {decision.role} cannot approve a refund (needs finance)",
                                   type=ErrorType.FORBIDDEN)  # fmt: skip
        if decision.decision == "reject" and not decision.comment.strip():
            raise ApplicationError("declining a refund needs a comment", type=ErrorType.INVALID)
