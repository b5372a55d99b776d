"""Order routes (docs/contract.md): intake, the order view, and the answers people give an order — decisions,
payment, dispatch, cancel — sent as Temporal updates, so the workflow's validators have the last word."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine
from temporalio.client import Client

from core.config import Settings
from core.db import read_only
from entrypoints.api.auth import CANCELLERS, FINANCE, SUBMITTERS, bearer, current_user, engine_of, requires
from entrypoints.api.deps import problems, settings_of, temporal_client
from models.contracts import OrderState
from models.order import Money, Order
from models.status import Role
from models.tables import SalesOrder, User
from models.text import Note
from services import order_commands
from services.audit import audit_refused_decision
from services.errors import OrderConflict, OrderNotFound, Refused
from services.intake import intake_refusal, take_order
from services.order_commands import SubmitAnswer
from services.queries.order_view import order_view
from workflows.contract import ErrorType

EngineDep = Annotated[Engine, Depends(engine_of)]
ClientDep = Annotated[Client, Depends(temporal_client)]
SettingsDep = Annotated[Settings, Depends(settings_of)]


class Intake(BaseModel):
    order_no: str
    workflow_id: str
    status: str


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    comment: Note = ""
    # The absent approver the caller stands in for (a substitution in force): decided with their role.
    on_behalf_of: Annotated[str, Field(max_length=64, pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$")] = ""


class RefundDecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    comment: Note = ""  # required to decline


class PaymentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: Annotated[Note, Field(max_length=200)] = ""
    # None: the whole prepayment, or what the order's invoices leave open
    amount: Money | None = None


class DispatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    warehouse: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    carrier: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    tracking_no: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[Note, Field(min_length=1)]


OrderNo = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", max_length=64)]


async def current_view(engine: Engine, client: Client, order_no: str) -> dict[str, Any]:
    """The read model's view; an order submitted a moment ago is only known to its workflow yet."""
    try:
        return await run_in_threadpool(_db_view, engine, order_no)
    except OrderNotFound:
        state: OrderState = await order_commands.live_state(client, order_no)
        return state.model_dump(mode="json")


async def view_after(engine: Engine, state: OrderState) -> dict[str, Any]:
    """The view after an update: the workflow's answer is the truth about status; the read model may lag."""
    live = state.model_dump(mode="json", include={"status", "pending_approval", "awaiting_dispatch", "reasons"})
    try:
        return {**await run_in_threadpool(_db_view, engine, state.order_no), **live}
    except OrderNotFound:
        return state.model_dump(mode="json")


def _db_view(engine: Engine, order_no: str) -> dict[str, Any]:
    with read_only(engine) as session:
        return order_view(session, order_no)


def orders_router() -> APIRouter:
    router = APIRouter(tags=["orders"])

    @router.post(
        "/orders",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Intake,
        responses={
            200: {"model": Intake, "description": "the same order again: same order and workflow, status now"},
            **problems(401, 403, 409, 422, 503),
        },
    )
    async def submit(
        order: Order,
        request: Request,
        response: Response,
        user: Annotated[User, Depends(requires(*SUBMITTERS))],
        engine: EngineDep,
        settings: SettingsDep,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    ) -> Intake:
        """Start the order's workflow once. Same order again (by order_no or Idempotency-Key) → 200 with the
        same answer; same order_no or key with other content → 409; never a second workflow."""
        refusal = intake_refusal(order, user=user.name, role=user.role)
        if refusal is not None:
            code = (
                status.HTTP_403_FORBIDDEN
                if refusal.kind == ErrorType.FORBIDDEN
                else status.HTTP_422_UNPROCESSABLE_CONTENT
            )
            raise HTTPException(code, str(refusal))
        client = await temporal_client(request)
        try:
            answer: SubmitAnswer = await take_order(
                client, engine, order, settings.task_queue, user=user.name, idempotency_key=idempotency_key
            )
        except OrderConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if not answer.created:
            response.status_code = status.HTTP_200_OK
        return Intake(order_no=answer.order_no, workflow_id=answer.workflow_id, status=answer.status)

    @router.get("/orders/{order_no}", responses=problems(401, 404, 503))
    async def view(
        order_no: OrderNo, _user: Annotated[User, Depends(current_user)], engine: EngineDep, client: ClientDep
    ) -> dict[str, Any]:
        return await current_view(engine, client, order_no)

    @router.post("/orders/{order_no}/decision", responses=problems(401, 403, 404, 409, 422, 503))
    async def decide(
        order_no: OrderNo,
        body: Decision,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        engine: EngineDep,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        """An approver's decision on the level the order awaits. The API vouches for who decided (token →
        user and role) by signing the decision; the workflow checks the role, the sales rep and the level."""
        try:
            user = await run_in_threadpool(current_user, request, credentials)
        except HTTPException as refusal:
            who = "(no token)" if credentials is None else "(invalid token)"
            await run_in_threadpool(
                audit_refused_decision,
                engine,
                order_no,
                level=0,
                role="",
                by=who,
                decision=body.decision,
                comment=body.comment,
                why=str(refusal.detail),
            )
            raise
        client = await temporal_client(request)
        state = await order_commands.decide(
            client,
            engine,
            order_no,
            user=user.name,
            role=user.role,
            decision=body.decision,
            comment=body.comment,
            secret=settings.decision_secret,
            on_behalf_of=body.on_behalf_of,
        )
        return await view_after(engine, state)

    @router.post("/orders/{order_no}/refund/decision", responses=problems(401, 403, 404, 409, 422, 503))
    async def decide_refund(
        order_no: OrderNo,
        body: RefundDecisionBody,
        user: Annotated[User, Depends(requires(*FINANCE))],
        engine: EngineDep,
        client: ClientDep,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        """Finance's decision on a refund over the approval amount (signed, like an approval); 200 with the refund
        as its workflow sees it once the decision is taken; a refusal is audited on the order."""
        refund = await order_commands.decide_refund(
            client, engine, order_no, user=user.name, role=user.role, decision=body.decision, comment=body.comment,
            secret=settings.decision_secret,
        )  # fmt: skip
        return refund.model_dump(mode="json")

    @router.post("/orders/{order_no}/payment", responses=problems(401, 403, 404, 409, 422, 503))
    async def pay(
        order_no: OrderNo,
        body: PaymentBody,
        user: Annotated[User, Depends(requires(*FINANCE))],
        engine: EngineDep,
        client: ClientDep,
    ) -> dict[str, Any]:
        answer = await order_commands.receive_payment(
            client, engine, order_no, reference=body.reference, amount=body.amount, by=user.name
        )
        if answer.state is not None:  # the prepayment: the workflow goes on
            return await view_after(engine, answer.state)
        assert answer.booked is not None
        booked = answer.booked
        view = await run_in_threadpool(_db_view, engine, order_no)
        view["payment"] = {
            "reference": booked.reference,
            "amount": str(booked.amount),
            "applied": [{"invoice_no": number, "amount": str(amount)} for number, amount in booked.applied],
            "unapplied": str(booked.unapplied),
            "recorded_before": booked.again,
        }
        return view

    @router.post("/orders/{order_no}/dispatch", responses=problems(401, 403, 404, 409, 422, 503))
    async def dispatch(
        order_no: OrderNo,
        body: DispatchBody,
        user: Annotated[User, Depends(requires(Role.WAREHOUSE, Role.OPS))],
        engine: EngineDep,
        client: ClientDep,
    ) -> dict[str, Any]:
        state = await order_commands.dispatch(
            client,
            order_no,
            warehouse=body.warehouse,
            carrier=body.carrier,
            tracking_no=body.tracking_no,
            by=user.name,
        )
        return await view_after(engine, state)

    @router.post("/orders/{order_no}/cancel", responses=problems(401, 403, 404, 409, 503))
    async def cancel(
        order_no: OrderNo,
        body: CancelBody,
        user: Annotated[User, Depends(requires(*CANCELLERS))],
        engine: EngineDep,
        client: ClientDep,
    ) -> dict[str, Any]:
        """Cancel before dispatch. A sales rep may cancel only their own orders."""
        if user.role == Role.SALES.value:
            await _own_order_only(engine, client, order_no, user.name)
        state = await order_commands.cancel(client, order_no, reason=body.reason, by=user.name)
        return await view_after(engine, state)

    return router


async def _own_order_only(engine: Engine, client: Client, order_no: str, user: str) -> None:
    def sales_rep() -> str | None:
        with read_only(engine) as session:
            order = session.get(SalesOrder, order_no)
            return None if order is None else order.sales_rep

    rep = await run_in_threadpool(sales_rep)
    if rep is None:
        await order_commands.live_state(client, order_no)  # OrderNotFound (404) when it does not exist at all
        raise Refused(f"order {order_no} is not registered yet; try again in a moment")
    if rep != user:
        raise Refused(f"{user} may cancel only their own orders ({order_no} is {rep}'s)", ErrorType.FORBIDDEN)
