"""Starting and answering order workflows through the Temporal client (used by the CLI, demo and API)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.db import unit_of_work
from core.decision_guard import UNSIGNED, audit_refused_decision
from domain.decision_signing import sign_decision
from models.contracts import (
    CancelInput,
    DecisionInput,
    DispatchInput,
    FulfillmentInput,
    FulfillmentResult,
    OrderState,
    PaymentInput,
    RestockInput,
)
from models.order import Order, workflow_id_for
from models.status import OrderStatus
from models.tables import User
from workflows import search_attributes as sa
from workflows.order import OrderFulfillment

CONTENT_HASH_MEMO = "content_sha256"


class CommandError(Exception):
    """A refusal with one clear line for the person or system that asked."""


class OrderNotFound(CommandError):
    pass


class OrderConflict(CommandError):
    pass


class Refused(CommandError):
    """The order refused the input. `kind` is the refusal's type: NotAwaiting, Forbidden, Invalid,
    UnsignedDecision, DispatchRefused, Closed, or ValueError (a state the order cannot take it in)."""

    def __init__(self, message: str, kind: str = "ValueError") -> None:
        super().__init__(message)
        self.kind = kind


class SubmitAnswer(BaseModel):
    order_no: str
    workflow_id: str
    status: str
    created: bool


async def start(client: Client, order: Order, task_queue: str) -> WorkflowHandle[OrderFulfillment, FulfillmentResult]:
    """Start the order's workflow; raises WorkflowAlreadyStartedError when its id was ever used."""
    return await client.start_workflow(
        OrderFulfillment.run,
        FulfillmentInput(order=order),
        id=order.workflow_id,
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        memo={CONTENT_HASH_MEMO: order.content_hash()},
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.ORDER_STATUS, OrderStatus.RECEIVED.value),
                SearchAttributePair(sa.CUSTOMER_ID, order.customer_id),
                SearchAttributePair(sa.CHANNEL, order.channel),
                SearchAttributePair(sa.ORDER_TOTAL, float(order.total)),
            ]
        ),
    )


async def submit(client: Client, order: Order, task_queue: str) -> SubmitAnswer:
    """Start the order's workflow once. The same order again answers as before; other content conflicts."""
    workflow_id = order.workflow_id
    try:
        await start(client, order, task_queue)
        return SubmitAnswer(order_no=order.order_no, workflow_id=workflow_id, status="RECEIVED", created=True)
    except WorkflowAlreadyStartedError:
        description = await client.get_workflow_handle(workflow_id).describe()
        if await description.memo_value(CONTENT_HASH_MEMO, default=None) != order.content_hash():
            raise OrderConflict(f"order {order.order_no} was already submitted with different content") from None
        status = description.typed_search_attributes.get(sa.ORDER_STATUS) or "RECEIVED"
        return SubmitAnswer(order_no=order.order_no, workflow_id=workflow_id, status=status, created=False)


def _handle(client: Client, order_no: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id_for(order_no))


async def _update(client: Client, order_no: str, update: Any, arg: BaseModel) -> OrderState:
    handle = _handle(client, order_no)
    try:
        result: OrderState = await handle.execute_update(update, arg, result_type=OrderState)
        return result
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        kind = getattr(cause, "type", None) or "ValueError"
        raise Refused(str(getattr(cause, "message", None) or cause or exc), kind) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            if await _is_closed(handle):
                raise Refused(f"order {order_no} is closed and takes no more input", "Closed") from None
            raise OrderNotFound(f"unknown order {order_no}") from None
        raise


async def _is_closed(handle: WorkflowHandle[Any, Any]) -> bool:
    """True when the workflow exists but has finished (it takes no more updates)."""
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status != WorkflowExecutionStatus.RUNNING


def user_role(engine: Engine, name: str) -> str:
    with unit_of_work(engine) as session:
        user = session.get(User, name)
        if user is None:
            raise CommandError(f"unknown user {name}")
        return user.role


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
) -> OrderState:
    """Send an approver's decision for the level the order awaits, signed with the decision secret (the
    worker refuses unsigned ones). `role` is the verified user's role (the API's); else it is looked up.
    Refusals are audited here, since the workflow's history never sees them."""
    if role is None:
        role = await asyncio.to_thread(user_role, engine, user)
    pending = None
    with suppress(CommandError):
        pending = (await live_state(client, order_no)).pending_approval
    level = pending.level if pending else 0  # 0: the order awaits no decision; the validator refuses it
    workflow_id = workflow_id_for(order_no)
    signature = sign_decision(
        secret, workflow_id=workflow_id, level=level, decision=decision, by=user, role=role, comment=comment
    )
    try:
        arg = DecisionInput.model_validate(
            {"decision": decision, "by": user, "role": role, "comment": comment, "level": level, "signature": signature}
        )
        return await _update(client, order_no, OrderFulfillment.decide, arg)
    except Refused as refusal:
        if refusal.kind == UNSIGNED:
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
        )
        raise


async def pay(client: Client, order_no: str, *, reference: str, by: str = "") -> OrderState:
    return await _update(client, order_no, OrderFulfillment.payment_received, PaymentInput(reference=reference, by=by))


async def dispatch(
    client: Client, order_no: str, *, warehouse: str, carrier: str, tracking_no: str, by: str = ""
) -> OrderState:
    return await _update(
        client,
        order_no,
        OrderFulfillment.dispatched,
        DispatchInput(warehouse=warehouse, carrier=carrier, tracking_no=tracking_no, by=by),
    )


async def cancel(client: Client, order_no: str, *, reason: str, by: str = "") -> OrderState:
    return await _update(client, order_no, OrderFulfillment.cancel, CancelInput(reason=reason, by=by))


async def live_state(client: Client, order_no: str) -> OrderState:
    try:
        handle = client.get_workflow_handle(workflow_id_for(order_no), result_type=FulfillmentResult)
        return await handle.query(OrderFulfillment.state)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise OrderNotFound(f"unknown order {order_no}") from None
        raise


async def notify_restock(client: Client, order_nos: list[str], skus: list[str], *, settle: float = 10.0) -> list[str]:
    """Tell backordered orders to look at stock again, one at a time in the given (oldest-first) order: each
    order's re-check finishes before the next is told, so an older order is served first. Returns the
    orders that are allocated now."""
    served: list[str] = []
    for order_no in order_nos:
        try:
            before = await live_state(client, order_no)
        except OrderNotFound:
            continue
        if before.status != OrderStatus.BACKORDERED:
            continue
        await _handle(client, order_no).signal(OrderFulfillment.restocked, RestockInput(skus=skus))
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
