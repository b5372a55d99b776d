"""Order commands through the Temporal client: start an order's workflow once, answer it (decisions, payment,
dispatch, cancel) with updates whose validators have the last word, and read its live state.

Used by the HTTP API, the CLI, the demo and the activities alike. Only the Temporal contract
(workflows/contract.py) is needed here, never the workflow code itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import col, select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.db import read_only, unit_of_work
from domain.decision_signing import sign_decision
from models.contracts import (
    CancelInput,
    DecisionInput,
    DispatchInput,
    FulfillmentInput,
    FulfillmentResult,
    OrderState,
    PaymentInput,
    RefundView,
    RestockInput,
    WakeBackorderedInput,
)
from models.order import Order, PaymentMethod
from models.status import OrderStatus
from models.tables import SalesOrder
from services.audit import audit_refused_decision
from services.billing.payments import PaymentBooked, paid_in_full, record_payment
from services.errors import CommandError, OrderConflict, OrderNotFound, Refused
from services.substitutes import acting_role
from services.users import user_role
from workflows import contract
from workflows.contract import (
    ErrorType,
    Query,
    Signal,
    Update,
    order_workflow_id,
    refund_workflow_id,
    restock_workflow_id,
)

log = structlog.get_logger(__name__)


class SubmitAnswer(BaseModel):
    order_no: str
    workflow_id: str
    status: str
    created: bool


async def start(client: Client, order: Order, task_queue: str) -> WorkflowHandle[Any, FulfillmentResult]:
    """Start the order's workflow; raises WorkflowAlreadyStartedError when its id was ever used."""
    return await client.start_workflow(
        contract.ORDER_WORKFLOW,
        FulfillmentInput(order=order),
        id=order_workflow_id(order.order_no),
        task_queue=task_queue,
        result_type=FulfillmentResult,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        memo={contract.CONTENT_HASH_MEMO: order.content_hash()},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(contract.ORDER_STATUS, OrderStatus.RECEIVED.value),
                SearchAttributePair(contract.CUSTOMER_ID, order.customer_id),
                SearchAttributePair(contract.CHANNEL, order.channel),
                SearchAttributePair(contract.ORDER_TOTAL, float(order.total)),
            ]
        ),
    )


async def submit(client: Client, order: Order, task_queue: str) -> SubmitAnswer:
    """Start the order's workflow once. The same order again answers as before; other content conflicts."""
    workflow_id = order_workflow_id(order.order_no)
    try:
        await start(client, order, task_queue)
        return SubmitAnswer(order_no=order.order_no, workflow_id=workflow_id, status="RECEIVED", created=True)
    except WorkflowAlreadyStartedError:
        description = await client.get_workflow_handle(workflow_id).describe()
        if await description.memo_value(contract.CONTENT_HASH_MEMO, default=None) != order.content_hash():
            raise OrderConflict(f"order {order.order_no} was already submitted with different content") from None
        status = description.typed_search_attributes.get(contract.ORDER_STATUS) or "RECEIVED"
        return SubmitAnswer(order_no=order.order_no, workflow_id=workflow_id, status=status, created=False)


def handle(client: Client, order_no: str) -> WorkflowHandle[Any, FulfillmentResult]:
    return client.get_workflow_handle(order_workflow_id(order_no), result_type=FulfillmentResult)


async def _update(client: Client, order_no: str, update: Update, arg: BaseModel) -> OrderState:
    order = handle(client, order_no)
    try:
        result: OrderState = await order.execute_update(update, arg, result_type=OrderState)
        return result
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        kind = getattr(cause, "type", None) or ErrorType.NOT_AWAITING
        raise Refused(str(getattr(cause, "message", None) or cause or exc), kind) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            if await _is_closed(order):
                raise Refused(f"order {order_no} is closed and takes no more input", ErrorType.CLOSED) from None
            raise OrderNotFound(f"unknown order {order_no}") from None
        raise


async def _is_closed(order: WorkflowHandle[Any, Any]) -> bool:
    """True when the workflow exists but has finished (it takes no more updates)."""
    try:
        description = await order.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status != WorkflowExecutionStatus.RUNNING


async def decide(
    client: Client,
    engine: Engine,
    order_no: str,
    *,
    user: str,
    decision: str,
    comment: str,
    secret: str,
    role: str | None = None,
    level: int | None = None,
    on_behalf_of: str = "",
) -> OrderState:
    """Send an approver's decision for the level the order awaits, signed with the decision secret (the
    worker refuses unsigned ones). `role` is the verified user's role (the API's); else it is looked up.
    `level` is the level the person was shown (the console's form): signed as such, so the workflow refuses it
    if the order has moved to another level since; None: the level the order awaits now.
    `on_behalf_of`: the absent approver `user` stands in for (services/substitutes.py): the decision is taken
    with that approver's role, and refused unless the substitution stands now.
    Refusals are audited here, since the workflow's history never sees them."""
    if on_behalf_of:
        acting = await asyncio.to_thread(acting_role, engine, user, on_behalf_of, datetime.now(UTC))
        if acting is None:
            why = f"{user} does not stand in for {on_behalf_of} now"
            await asyncio.to_thread(
                audit_refused_decision,
                engine,
                order_no,
                level=level or 0,
                role=role or "",
                by=user,
                decision=decision,
                comment=comment,
                why=why,
                on_behalf_of=on_behalf_of,
            )
            raise Refused(why, ErrorType.FORBIDDEN)
        role = acting
    elif role is None:
        role = await asyncio.to_thread(user_role, engine, user)
    pending = None
    with suppress(OrderNotFound):
        pending = (await live_state(client, order_no)).pending_approval
    if level is None:
        level = pending.level if pending else 0  # 0: the order awaits no decision; the validator refuses it
    signature = sign_decision(
        secret,
        workflow_id=order_workflow_id(order_no),
        level=level,
        decision=decision,
        by=user,
        role=role,
        comment=comment,
        on_behalf_of=on_behalf_of,
    )
    try:
        arg = DecisionInput.model_validate(
            {
                "decision": decision,
                "by": user,
                "role": role,
                "comment": comment,
                "level": level,
                "signature": signature,
                "on_behalf_of": on_behalf_of,
            }
        )
        return await _update(client, order_no, Update.DECIDE, arg)
    except Refused as refusal:
        if refusal.kind == ErrorType.UNSIGNED_DECISION:
            raise  # the worker's DecisionGuard audits these itself
        await asyncio.to_thread(
            audit_refused_decision,
            engine,
            order_no,
            level=level,
            role=role,
            by=user,
            decision=decision,
            comment=comment,
            why=str(refusal),
            on_behalf_of=on_behalf_of,
        )
        raise


async def pay(client: Client, order_no: str, *, reference: str, by: str = "") -> OrderState:
    return await _update(client, order_no, Update.PAYMENT_RECEIVED, PaymentInput(reference=reference, by=by))


@dataclass(frozen=True)
class PaymentAnswer:
    state: OrderState | None = None  # a prepayment: the workflow's answer (it goes on to allocate)
    booked: PaymentBooked | None = None  # a payment against the order's invoices, in the ledger


async def receive_payment(
    client: Client, engine: Engine, order_no: str, *, reference: str, amount: Decimal | None, by: str
) -> PaymentAnswer:
    """A payment for an order: the prepayment it awaits (the whole total, to its workflow), or money against its
    open invoices (the receivables ledger; services/billing/payments.py). CommandError when it is neither."""
    order = await asyncio.to_thread(_order_row, engine, order_no)
    if order is not None and order.status == OrderStatus.AWAITING_PAYMENT.value:
        if amount is not None and amount != order.total:
            raise CommandError(
                f"order {order_no} awaits its prepayment of {order.total} {order.currency}, not {amount}"
            )
        return PaymentAnswer(state=await pay(client, order_no, reference=reference, by=by))

    def book() -> PaymentBooked:
        with unit_of_work(engine) as session:
            return record_payment(session, order_no, reference=reference, amount=amount, by=by, at=datetime.now(UTC))

    booked = await asyncio.to_thread(book)
    if order is not None and not booked.again:
        try:
            await recheck_credit_holds(client, engine, [order.customer_id])
        except RPCError:  # the payment stands; `orderflow payments recheck CUSTOMER` tells them later
            log.warning("credit holds not told of a payment", customer_id=order.customer_id, exc_info=True)
    return PaymentAnswer(booked=booked)


class PaymentTooEarly(CommandError):
    """A platform's paid event for an order that cannot take it yet (not registered, or not yet awaiting its
    prepayment): the webhook answers 409, so the platform sends it again."""


async def channel_paid(client: Client, engine: Engine, order_no: str, *, reference: str, by: str) -> str:
    """A sales platform says the order is paid: the prepayment it awaits (to its workflow), or — taken earlier, on
    credit or cash on delivery — what its total is still short of, in the ledger (payments.paid_in_full). Says
    what was done, for the webhook's answer."""
    order = await asyncio.to_thread(_order_row, engine, order_no)
    if order is None:
        raise PaymentTooEarly(f"order {order_no} is not registered yet: send the event again")
    if order.payment_method == PaymentMethod.PREPAID.value:  # its prepayment goes to its workflow, never the ledger
        if order.paid:
            return "order already taken and paid: nothing booked"
        if order.status != OrderStatus.AWAITING_PAYMENT.value:
            raise PaymentTooEarly(f"order {order_no} is not awaiting its prepayment yet: send the event again")
        await pay(client, order_no, reference=reference, by=by)
        return "order already taken; its payment is recorded now"

    def book() -> PaymentBooked | None:  # keyed on the order too: platforms' ids (and bank references) may collide
        with unit_of_work(engine) as session:
            return paid_in_full(session, order_no, reference=f"{order_no}:{reference}", by=by, at=datetime.now(UTC))

    booked = await asyncio.to_thread(book)
    if booked is None:
        return "order already taken and paid in full: nothing booked"
    if booked.again:
        return f"order already taken; this payment ({booked.amount}) was booked before"
    if order is not None:
        try:
            await recheck_credit_holds(client, engine, [order.customer_id])
        except RPCError:  # the payment stands; `orderflow payments recheck CUSTOMER` tells them later
            log.warning("credit holds not told of a payment", customer_id=order.customer_id, exc_info=True)
    return f"order already taken; {booked.amount} booked against its invoices ({booked.unapplied} held for later)"


async def recheck_credit_holds(client: Client, engine: Engine, customer_ids: list[str]) -> list[str]:
    """Tell these customers' orders on credit hold that money came in: each checks its exposure again and, if it
    is under the limit now and the hold was its only reason to wait, goes on (workflows/approval.py). The orders
    told; one that ended meanwhile is skipped."""
    return await tell_credit_holds(client, await asyncio.to_thread(held_orders, engine, customer_ids))


async def tell_credit_holds(client: Client, order_nos: list[str]) -> list[str]:
    told: list[str] = []
    for order_no in order_nos:
        try:
            await handle(client, order_no).signal(Signal.CREDIT_RECHECK)
            told.append(order_no)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
    return told


def held_orders(engine: Engine, customer_ids: list[str]) -> list[str]:
    """These customers' orders on credit hold (the read model), oldest first."""
    with read_only(engine) as session:
        query = select(SalesOrder.order_no).where(
            col(SalesOrder.customer_id).in_(customer_ids), SalesOrder.status == OrderStatus.CREDIT_HOLD.value
        )
        return list(session.exec(query.order_by(col(SalesOrder.created_at))).all())


def _order_row(engine: Engine, order_no: str) -> SalesOrder | None:
    with read_only(engine) as session:
        order = session.get(SalesOrder, order_no)
        if order is not None:
            session.expunge(order)
        return order


async def dispatch(
    client: Client, order_no: str, *, warehouse: str, carrier: str, tracking_no: str, by: str = ""
) -> OrderState:
    return await _update(
        client,
        order_no,
        Update.DISPATCHED,
        DispatchInput(warehouse=warehouse, carrier=carrier, tracking_no=tracking_no, by=by),
    )


async def cancel(client: Client, order_no: str, *, reason: str, by: str = "") -> OrderState:
    return await _update(client, order_no, Update.CANCEL, CancelInput(reason=reason, by=by))


async def live_state(client: Client, order_no: str) -> OrderState:
    try:
        state: OrderState = await handle(client, order_no).query(Query.STATE, result_type=OrderState)
        return state
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise OrderNotFound(f"unknown order {order_no}") from None
        raise


async def notify_restock(
    client: Client,
    order_nos: list[str],
    skus: list[str],
    *,
    settle: float = 10.0,
    on_each: Callable[[str], object] | None = None,
) -> list[str]:
    """Tell backordered orders to look at stock again, one at a time in the given (oldest-first) order: each
    order's re-check finishes before the next is told, so an older order is served first. Returns the
    orders that are allocated now. `on_each` hears of each order as its turn comes (a heartbeat)."""
    served: list[str] = []
    for order_no in order_nos:
        if on_each is not None:
            on_each(order_no)
        try:
            before = await live_state(client, order_no)
        except OrderNotFound:
            continue
        if before.status != OrderStatus.BACKORDERED:
            continue
        await handle(client, order_no).signal(Signal.RESTOCKED, RestockInput(skus=skus))
        deadline = asyncio.get_running_loop().time() + settle
        state = before
        while state.allocation_attempts == before.allocation_attempts and state.status == OrderStatus.BACKORDERED:
            if asyncio.get_running_loop().time() > deadline:
                break  # the worker is slow or down: the order re-checks by itself later
            await asyncio.sleep(0.05)
            state = await live_state(client, order_no)
        if state.status != OrderStatus.BACKORDERED:
            served.append(order_no)
    return served


async def wake_backordered(
    client: Client, receipt: dict[str, Any], order_nos: list[str], skus: list[str], task_queue: str
) -> str:
    """Start the receipt's RestockWakeUp (workflows/restock.py) and return its workflow id without waiting for
    it: the orders are woken in the background, oldest first. The same receipt again finds the same wake-up."""
    workflow_id = restock_workflow_id(receipt["receipt_id"], receipt["at"])
    with suppress(WorkflowAlreadyStartedError):  # this receipt's wake-up ran already
        await client.start_workflow(
            contract.RESTOCK_WORKFLOW,
            WakeBackorderedInput(order_nos=order_nos, skus=skus),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    return workflow_id


async def decide_refund(
    client: Client, engine: Engine, order_no: str, *, user: str, role: str, decision: str, comment: str, secret: str
) -> RefundView:
    """Finance's decision on a refund over the approval amount, signed for the order's RefundPayment (level 1)
    like an approval, so the worker's DecisionGuard refuses anything the API did not sign."""
    workflow_id = refund_workflow_id(order_no)
    signature = sign_decision(
        secret,
        workflow_id=workflow_id,
        level=contract.REFUND_DECISION_LEVEL,
        decision=decision,
        by=user,
        role=role,
        comment=comment,
    )
    arg = DecisionInput.model_validate(
        {"decision": decision, "by": user, "role": role, "comment": comment, "level": contract.REFUND_DECISION_LEVEL,
         "signature": signature}
    )  # fmt: skip
    refund = client.get_workflow_handle(workflow_id)
    try:
        result: RefundView = await refund.execute_update(Update.DECIDE, arg, result_type=RefundView)
        return result
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        kind = getattr(cause, "type", None) or ErrorType.NOT_AWAITING
        why = str(getattr(cause, "message", None) or cause or exc)
        if kind != ErrorType.UNSIGNED_DECISION:  # the worker's DecisionGuard audits those itself
            await asyncio.to_thread(
                audit_refused_decision, engine, order_no, level=contract.REFUND_DECISION_LEVEL, role=role, by=user,
                decision=decision, comment=comment, why=f"refund decision: {why}",
            )  # fmt: skip
        raise Refused(why, kind) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            if await _is_closed(refund):
                raise Refused(f"the refund of order {order_no} is settled", ErrorType.CLOSED) from None
            raise OrderNotFound(f"order {order_no} has no refund") from None
        raise
