"""The approval stage of OrderFulfillment: the prepayment wait and every approval level, with reminders,
escalation and deadlines; and the checks the `decide` and `payment_received` updates make before they are taken.

A credit hold is a finance level (CREDIT_HOLD instead of AWAITING_APPROVAL): never a silent reject. A level there
only for the hold is released without a person when a payment brings the exposure under the limit (audited).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.contract import ErrorType, NoticeKind
from workflows.order_state import FulfillmentState, Level, Stop
from workflows.order_steps import OrderMoves, run_step
from workflows.steps import CHECKING, RECORDING, CreditSteps, RecordSteps

with workflow.unsafe.imports_passed_through():
    from domain.approvals import refusal_reason
    from models.contracts import ApprovalAudit, AwaitingDecision, CreditInput, DecisionInput, PaymentInput
    from models.status import TERMINAL_STATUSES, OrderStatus, Role

# Since this patch an order held only for credit is released when a payment brings its customer's exposure under
# the limit (signal credit_recheck, sent by whoever books the payment).
CREDIT_RELEASE = "credit-release-on-payment"
CREDIT_RELEASER = "system:credit"  # the audit's `by` of such a release
# Who hears about an approval that has waited past its reminder.
ESCALATE_TO = {Role.FINANCE: Role.FINANCE_DIRECTOR, Role.FINANCE_DIRECTOR: Role.OPS}


def with_credit_hold(state: FulfillmentState, levels: list[Level], why: str) -> list[Level]:
    """A credit hold needs finance: the first finance level carries it, or one is added in front."""
    state.reasons.append(f"credit hold: {why}")
    for level in levels:
        if level.role == Role.FINANCE:
            level.credit_hold = True
            return levels
    held = [Level(1, Role.FINANCE, credit_hold=True, credit_only=True)]
    return held + [Level(level.index + 1, level.role) for level in levels]


async def await_payment(moves: OrderMoves) -> None:
    state = moves.state
    await moves.transition(OrderStatus.AWAITING_PAYMENT)
    await moves.notify(NoticeKind.PAYMENT_REQUESTED, "customer")
    paid = await moves.wait(lambda: state.payment is not None, state.reviewed.payment_deadline)
    if not paid:
        raise Stop(OrderStatus.CANCELLED, "payment deadline passed")
    state.paid = True
    reference = state.payment.reference if state.payment else ""
    await moves.transition(state.status, f"payment received {reference}".strip(), paid=True, payment=state.payment)


async def await_decision(moves: OrderMoves, level: Level) -> None:
    """One level: ask its role, remind (and escalate) once, cancel at the deadline; audit the decision."""
    state = moves.state
    state.level = level
    status = OrderStatus.CREDIT_HOLD if level.credit_hold else OrderStatus.AWAITING_APPROVAL
    # The read model's to-do for the level's approvers; its deadline is shown, the timer below is what acts.
    until = workflow.now() + state.reviewed.approval_deadline
    awaiting = AwaitingDecision(role=level.role, level=level.index, until=until, why=[*state.fired, *state.reasons])
    await moves.transition(status, f"level {level.index}: {level.role.value}", awaiting=awaiting)
    await moves.notify(NoticeKind.APPROVAL_NEEDED, "role", key=f"approval_needed:{level.index}", role=level.role)
    started = workflow.now()
    deadline = started + state.reviewed.approval_deadline
    reminder_at = started + state.reviewed.approval_reminder
    reminded = reminder_at >= deadline
    # Asked once, when the level starts: a history recorded before the patch never listens for a recheck, even if
    # a signal reaches it (a new API beside an old worker during a deploy).
    releasable = level.credit_only and workflow.patched(CREDIT_RELEASE)
    while not state.decisions:
        if releasable and state.credit_recheck:
            state.credit_recheck = False
            if await _released(moves, level):
                return
            continue
        now = workflow.now()
        if now >= deadline:
            raise Stop(OrderStatus.CANCELLED, f"no {level.role.value} decision before the approval deadline")
        if not reminded and now >= reminder_at:
            reminded = True
            waited = str(now - started)
            await moves.notify(
                NoticeKind.APPROVAL_REMINDER,
                "role",
                key=f"approval_reminder:{level.index}",
                role=level.role,
                waited=waited,
            )
            if workflow.patched("approval-escalation"):
                await moves.notify(
                    NoticeKind.APPROVAL_ESCALATED,
                    "role",
                    key=f"approval_escalated:{level.index}",
                    role=ESCALATE_TO.get(level.role, Role.OPS),
                    waited=waited,
                    level_role=level.role.value,
                )
            continue
        wake = deadline if reminded else reminder_at
        await moves.wait(lambda: bool(state.decisions) or (releasable and state.credit_recheck), wake - now)
    decision = state.decisions[0]
    state.decided_at_seq = state.seq
    await run_step(
        RECORDING,
        RecordSteps.record_approval,
        ApprovalAudit(
            order_no=state.order.order_no,
            level=level.index,
            role=level.role,
            by=decision.by,
            decision=decision.decision,
            at=workflow.now(),
            comment=decision.comment,
            on_behalf_of=decision.on_behalf_of,
        ),
    )
    state.deciders.append(decision.by)
    if decision.on_behalf_of:  # four eyes: the absent approver has decided this level too
        state.deciders.append(decision.on_behalf_of)
    state.decisions.pop(0)
    state.level = None
    if decision.decision == "reject":
        who = f"{decision.by} for {decision.on_behalf_of}" if decision.on_behalf_of else decision.by
        raise Stop(OrderStatus.REJECTED, f"rejected by {who} ({level.role.value}): {decision.comment}")
    state.decisions_taken += 1


async def _released(moves: OrderMoves, level: Level) -> bool:
    """The credit check again; under the limit now, the level is passed without a person, audited as the system's
    release with the figures. Still over: False (the hold stands, finance still decides)."""
    state = moves.state
    order = state.order
    credit = await run_step(
        CHECKING,
        CreditSteps.check_credit,
        CreditInput(order_no=order.order_no, customer_id=order.customer_id, total=order.total),
    )
    if credit.hold or state.decisions:  # still over; or finance decided while we looked: theirs is the decision
        return False
    why = f"exposure {credit.exposure} within limit {credit.limit} after a payment"
    await run_step(
        RECORDING,
        RecordSteps.record_approval,
        ApprovalAudit(
            order_no=order.order_no, level=level.index, role=level.role, by=CREDIT_RELEASER, decision="approve",
            at=workflow.now(), comment=f"credit hold released: {why}",
        ),
    )  # fmt: skip
    state.reasons.append(f"credit hold released: {why}")
    state.decided_at_seq = state.seq
    state.level = None
    state.decisions_taken += 1
    return True


def decided(state: FulfillmentState, taken_before: int) -> bool:
    """A decision taken after `taken_before` has been acted on (the next status is set), or the order ended."""
    return (
        state.decisions_taken > taken_before and state.seq > state.decided_at_seq
    ) or state.status in TERMINAL_STATUSES


def decision_refusal(state: FulfillmentState, decision: DecisionInput) -> ApplicationError | None:
    """Why the order cannot take this decision now, or None. Runs after the worker's DecisionGuard verified the
    API's signature (workflows/decision_guard.py). The refusal's type picks the API's answer (docs/contract.md)."""
    level = state.level
    if level is None or state.status not in (OrderStatus.AWAITING_APPROVAL, OrderStatus.CREDIT_HOLD):
        return ApplicationError(
            f"order {state.order.order_no} is not awaiting a decision (status {state.status.value})",
            type=ErrorType.NOT_AWAITING,
        )
    if state.decisions:
        return ApplicationError(
            f"a decision on level {level.index} is already being processed", type=ErrorType.NOT_AWAITING
        )
    if decision.level != level.index:
        return ApplicationError(
            f"the decision is for level {decision.level} but the order awaits level {level.index}",
            type=ErrorType.NOT_AWAITING,
        )
    if decision.decision == "reject" and not decision.comment.strip():
        return ApplicationError("a rejection needs a comment", type=ErrorType.INVALID)
    why = refusal_reason(
        level_role=level.role,
        decider=decision.by,
        decider_role=decision.role,
        sales_rep=state.order.sales_rep,
        earlier_deciders=state.deciders,
        on_behalf_of=decision.on_behalf_of,
    )
    return ApplicationError(why, type=ErrorType.FORBIDDEN) if why else None


def payment_refusal(state: FulfillmentState, _payment: PaymentInput) -> ApplicationError | None:
    if state.status != OrderStatus.AWAITING_PAYMENT or state.payment is not None:
        return ApplicationError(
            f"order {state.order.order_no} is not awaiting payment (status {state.status.value})",
            type=ErrorType.NOT_AWAITING,
        )
    return None
