"""POST /webhooks/channels/{channel}: a sales platform's own order webhook (Shopify orders/create, Taobao and JD
trade pushes). Signature first (401, nothing parsed, nothing changes), then the mapper (422 listing every problem),
then intake, idempotent on the platform's own order id (it is the order number: SHOPIFY-<id>, TAOBAO-<tid>…). A
later "paid" event of a known order is its payment (services/order_commands.py channel_paid)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from core.config import Settings
from core.db import read_only
from entrypoints.api.auth import engine_of
from entrypoints.api.deps import problems, settings_of, temporal_client
from integrations.channels import (
    ChannelPayloadError,
    ChannelSignatureError,
    UnknownChannel,
    read_channel_order,
)
from models.order import Order, Payment
from models.tables import SalesOrder
from services import order_commands
from services.errors import CommandError, OrderConflict
from services.intake import take_order
from workflows.contract import order_workflow_id

log = structlog.get_logger("channels")

SettingsDep = Annotated[Settings, Depends(settings_of)]


class ChannelAnswer(BaseModel):
    order_no: str | None = None
    workflow_id: str | None = None
    status: str | None = None
    duplicate: bool = False
    note: str = ""


def channels_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/webhooks/channels/{channel}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=ChannelAnswer,
        responses={
            200: {"model": ChannelAnswer, "description": "already taken, or not a new order: nothing started"},
            **problems(401, 404, 409, 422, 503),
        },
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def channel_order(
        channel: str,
        request: Request,
        response: Response,
        engine: Annotated[Engine, Depends(engine_of)],
        settings: SettingsDep,
    ) -> ChannelAnswer:
        body = await request.body()
        try:
            found = await run_in_threadpool(read_channel_order, channel, body, request.headers, settings)
        except UnknownChannel as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except ChannelSignatureError as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
        except ChannelPayloadError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": ["body"], "msg": e} for e in exc.errors]
            ) from None
        if found is None:
            response.status_code = status.HTTP_200_OK
            return ChannelAnswer(note="not a new order: acknowledged, nothing started")
        client = await temporal_client(request)
        order = found.order
        try:
            answer = await take_order(
                client, engine, order, settings.task_queue, user=f"channel:{channel}", idempotency_key=None
            )
        except OrderConflict:
            # The platform tells us about an order we already took with other content: acknowledged so it stops
            # re-sending. Only a payment is taken over (orders/create, then orders/paid); any other change is
            # not applied, and logged for ops.
            response.status_code = status.HTTP_200_OK
            if await run_in_threadpool(_differs_only_in_payment, engine, order):
                note = await _payment_news(
                    client,
                    engine,
                    order.order_no,
                    paid=order.payment.paid,
                    reference=found.channel_order_id,
                    by=f"channel:{channel}",
                )  # fmt: skip  (a 409 when it comes too early: the platform sends it again)
            else:
                note = "order already taken with other content: this change is not applied (logged for ops)"
                log.warning("channel order changed after intake", channel=channel, order_no=order.order_no)
            return ChannelAnswer(
                order_no=order.order_no, workflow_id=order_workflow_id(order.order_no), duplicate=True, note=note
            )
        except RPCError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Temporal: {exc.message}") from None
        if not answer.created:
            response.status_code = status.HTTP_200_OK
        return ChannelAnswer(
            order_no=answer.order_no, workflow_id=answer.workflow_id, status=answer.status, duplicate=not answer.created
        )

    return router


def _differs_only_in_payment(engine: Engine, order: Order) -> bool:
    with read_only(engine) as session:
        taken = session.get(SalesOrder, order.order_no)
    if taken is None:
        return False  # not in the read model yet: nothing to compare with, so nothing is taken over
    as_taken = order.model_copy(update={"payment": Payment.model_validate(taken.payload.get("payment", {}))})
    return as_taken.content_hash() == taken.content_hash


async def _payment_news(client: Client, engine: Engine, order_no: str, *, paid: bool, reference: str, by: str) -> str:
    """A later event for a known order: if it says the order is paid, record it — the prepayment it awaits, or
    what its total is still short of in the ledger (a cash-on-delivery or credit order the merchant marked paid)."""
    if not paid:
        return "order already taken; this event changes nothing"
    try:
        return await order_commands.channel_paid(client, engine, order_no, reference=reference, by=by)
    except order_commands.PaymentTooEarly as exc:  # 409: the platform sends it again (Shopify retries for 48 h)
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except (CommandError, RPCError) as exc:
        return f"order already taken; payment not recorded: {exc}"
