"""Channel webhooks over HTTP against the real worker and time-skipping server: signed platform payloads become
orders once; forged, unknown or unusable ones are refused and start nothing."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.db import unit_of_work
from integrations.channels import sign
from models.status import OrderStatus
from models.tables import LedgerEntry, SalesOrder
from services import order_commands
from services.billing.payments import open_invoices
from tests.support.read_model import add_order
from tests.support.refunds import refund_finished
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import order_workflow_id

SAMPLES = Path(__file__).resolve().parents[1] / "unit" / "samples" / "channels"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def shopify_order(**changes: Any) -> dict[str, Any]:
    order = sample("shopify_orders_create")
    order["id"] = int(uuid.uuid4().int % 10**13)  # a new platform order id per test run
    return {**order, **changes}


async def post(
    api: httpx.AsyncClient, settings: Settings, channel: str, data: object, **headers: str
) -> httpx.Response:
    body = json.dumps(data, ensure_ascii=False).encode()
    return await api.post(
        f"/webhooks/channels/{channel}", content=body, headers={**sign(channel, body, settings), **headers}
    )


async def started(client: Client, order_no: str) -> bool:
    try:
        await client.get_workflow_handle(order_workflow_id(order_no)).describe()
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def cancel_in_the_warehouse(client: Client, order_no: str) -> None:
    handle = client.get_workflow_handle(order_workflow_id(order_no))
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.cancel(client, order_no, reason="test over")
    await handle.result()
    await refund_finished(client, order_no)  # a paid order's refund, too


async def test_a_shopify_order_is_taken_once_and_forgeries_change_nothing(
    api: httpx.AsyncClient, client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    data = shopify_order()
    number = f"SHOPIFY-{data['id']}"
    body = json.dumps(data).encode()
    forged = await api.post(
        "/webhooks/channels/shopify",
        content=body,
        headers={"X-Shopify-Hmac-Sha256": "AAAA", "X-Shopify-Topic": "orders/create"},
    )
    assert forged.status_code == 401
    other_secret = settings.model_copy(update={"channel_shopify_secret": "not-the-shops"})
    resigned = await api.post("/webhooks/channels/shopify", content=body, headers=sign("shopify", body, other_secret))
    assert resigned.status_code == 401
    assert not await started(client, number)

    async with running_worker(client, engine, settings, task_queue):
        first = await post(api, settings, "shopify", data)
        assert first.status_code == 202, first.text
        assert first.json()["order_no"] == number
        again = await post(api, settings, "shopify", data)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        await cancel_in_the_warehouse(client, number)
        changed = {**data, "line_items": [{**data["line_items"][0], "quantity": 9}]}
        ignored = await post(api, settings, "shopify", changed)
        assert ignored.status_code == 200 and "not applied" in ignored.json()["note"], ignored.text

    unknown = await api.post("/webhooks/channels/pigeon-post", content=body, headers=sign("shopify", body, settings))
    assert unknown.status_code == 404
    garbage = await post(api, settings, "shopify", {"id": "x", "line_items": "none"})
    assert garbage.status_code == 422 and len(garbage.json()["detail"]) >= 2
    not_json = await api.post(
        "/webhooks/channels/shopify", content=b"\xff{", headers=sign("shopify", b"\xff{", settings)
    )
    assert not_json.status_code == 422


async def test_a_pending_shopify_order_waits_for_its_orders_paid_event(
    api: httpx.AsyncClient, client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    data = shopify_order(financial_status="pending", gateway="bogus", payment_gateway_names=["bogus"])
    number = f"SHOPIFY-{data['id']}"
    async with running_worker(client, engine, settings, task_queue):
        assert (await post(api, settings, "shopify", data)).status_code == 202
        await wait_for_status(client.get_workflow_handle(order_workflow_id(number)), OrderStatus.AWAITING_PAYMENT)
        paid = await post(
            api, settings, "shopify", {**data, "financial_status": "paid"}, **{"X-Shopify-Topic": "orders/paid"}
        )
        assert paid.status_code == 200 and "payment is recorded" in paid.json()["note"], paid.text
        await cancel_in_the_warehouse(client, number)


async def test_taobao_trades_become_orders_when_paid(
    api: httpx.AsyncClient, client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    unpaid = sample("taobao_trade_wait_buyer_pay")
    ignored = await post(api, settings, "taobao", unpaid)
    assert ignored.status_code == 200 and ignored.json()["order_no"] is None
    assert not await started(client, f"TAOBAO-{unpaid['tid']}")

    paid = sample("taobao_trade_paid")
    trade = paid["trade_fullinfo_get_response"]["trade"]
    tid = str(uuid.uuid4().int % 10**16)
    trade["tid"], trade["tid_str"] = int(tid), tid
    async with running_worker(client, engine, settings, task_queue):
        taken = await post(api, settings, "taobao", paid)
        assert taken.status_code == 202, taken.text
        assert taken.json()["order_no"] == f"TAOBAO-{tid}"
        await cancel_in_the_warehouse(client, f"TAOBAO-{tid}")


async def test_a_cash_on_delivery_shopify_order_marked_paid_is_paid_once_whoever_tells_first(
    api: httpx.AsyncClient, client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    """orders/paid of a COD order after dispatch pays its invoice; the carrier's collection at delivery is the same
    money: whichever is booked first, the order's payments add up to its total once, and a re-sent event adds
    nothing."""
    cod = "Cash on Delivery (COD)"
    data = shopify_order(financial_status="pending", gateway=cod, payment_gateway_names=[cod])
    number = f"SHOPIFY-{data['id']}"
    paid_event = {**data, "financial_status": "paid"}
    async with running_worker(client, engine, settings, task_queue):
        assert (await post(api, settings, "shopify", data)).status_code == 202
        handle = client.get_workflow_handle(order_workflow_id(number))
        picking = await wait_for_status(handle, OrderStatus.PICKING)
        for index, warehouse in enumerate(picking.awaiting_dispatch):
            await order_commands.dispatch(
                client, number, warehouse=warehouse, carrier="sim", tracking_no=f"SIMCOD{data['id']}{index}"
            )
        paid = await post(api, settings, "shopify", paid_event, **{"X-Shopify-Topic": "orders/paid"})
        assert paid.status_code == 200, paid.text
        assert any(words in paid.json()["note"] for words in ("booked against its invoices", "paid in full")), paid.text
        again = await post(api, settings, "shopify", paid_event, **{"X-Shopify-Topic": "orders/paid"})
        assert again.status_code == 200
        assert any(words in again.json()["note"] for words in ("booked before", "paid in full")), again.text
        await wait_for_status(handle, OrderStatus.COMPLETED)
    with Session(engine) as session:
        order = session.get(SalesOrder, number)
        assert order is not None
        payments = session.exec(
            select(col(LedgerEntry.amount)).where(LedgerEntry.order_no == number, LedgerEntry.kind == "payment")
        ).all()
        assert sum(payments, Decimal("0")) == -order.total  # once, from one source or split between both
        assert open_invoices(session, number) == []


async def test_a_paid_event_before_a_prepaid_order_awaits_its_payment_books_nothing_and_asks_for_a_resend(
    client: Client, engine: Engine
) -> None:
    """The platform's paid event raced ahead of the order's review: booking it in the ledger would count the money
    twice once the workflow asks for the prepayment. It is refused (the webhook answers 409: sent again later)."""
    number = f"SHOPIFY-EARLY-{uuid.uuid4().hex[:6]}"
    add_order(engine, number, rep="bob", sku="SKU-1001", customer="C-1001")
    with unit_of_work(engine) as session:
        row = session.get(SalesOrder, number)
        assert row is not None
        row.payment_method = "prepaid"
        session.add(row)
    with pytest.raises(order_commands.PaymentTooEarly, match="not awaiting its prepayment yet"):
        await order_commands.channel_paid(client, engine, number, reference="123", by="channel:shopify")
    with pytest.raises(order_commands.PaymentTooEarly, match="not registered yet"):
        await order_commands.channel_paid(client, engine, "SHOPIFY-NEVER", reference="9", by="channel:shopify")
    with Session(engine) as session:
        assert session.exec(select(LedgerEntry).where(LedgerEntry.order_no == number)).all() == []
