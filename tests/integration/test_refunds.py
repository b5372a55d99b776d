"""Refunds on the time-skipping server with the simulated payment provider (a real HTTP server on loopback): a
prepaid order cancelled after payment is paid back through the provider; one over the approval amount waits for a
signed finance decision; one the provider refuses is left for finance to make by hand."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError

from core.config import Settings
from core.db import read_only, unit_of_work
from models.contracts import RefundView
from models.status import OrderStatus, RefundState
from models.tables import ApprovalRecord, LedgerEntry, Notification, Refund
from services import order_commands
from services.errors import Refused
from services.queries.finance import refunds_due, refunds_to_approve
from services.queries.order_view import order_view
from services.refunds import record_refund
from tests.conftest import make_settings
from tests.support.orders import make_order
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import ErrorType, Query, refund_workflow_id

D = Decimal


def _number(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8].upper()}"


async def _paid_then_cancelled(client: Client, number: str, task_queue: str, reference: str) -> None:
    """A new customer's order (first orders prepay): paid, then cancelled in picking."""
    order = make_order(number, [("SKU-1002", 2, "499.00")], customer_id="C-2001")  # 998.00
    handle = await order_commands.start(client, order, task_queue)
    await wait_for_status(handle, OrderStatus.AWAITING_PAYMENT)
    await order_commands.pay(client, number, reference=reference, by="fiona")
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.cancel(client, number, reason="customer changed mind", by="alice")
    assert (await handle.result()).status == OrderStatus.CANCELLED


async def _refund_state(client: Client, number: str, *states: str) -> RefundView:
    handle = client.get_workflow_handle(refund_workflow_id(number))
    for _ in range(200):
        try:
            view: RefundView = await handle.query(Query.STATE, result_type=RefundView)
            if view.state in states:
                return view
        except RPCError:  # not started yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"the refund of {number} never reached {states}")


def _ledger(engine: Engine, number: str) -> list[tuple[str, Decimal]]:
    with Session(engine) as session:
        rows = session.exec(select(LedgerEntry).where(LedgerEntry.order_no == number).order_by(col(LedgerEntry.id)))
        return [(e.kind, e.amount) for e in rows]


async def _provider_refunds(settings: Settings) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{settings.payment_provider_url}/refunds")
    items: list[dict[str, object]] = answer.json()["items"]
    return items


async def test_a_prepaid_order_cancelled_after_payment_is_refunded_through_the_provider(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    number = _number("REFUND")
    async with running_worker(client, engine, settings, task_queue):
        await _paid_then_cancelled(client, number, task_queue, reference=f"BANK-{number}")
        result = await client.get_workflow_handle(refund_workflow_id(number), result_type=RefundView).result()
    assert (result.state, result.amount, result.needs_approval) == (RefundState.MADE, D("998.00"), False)
    [made] = [r for r in await _provider_refunds(settings) if r["idempotency_key"] == f"refund:{number}"]
    assert (made["payment"], made["amount"], made["submissions"]) == (f"BANK-{number}", "998.00", 1)
    with Session(engine) as session:
        refund = session.get(Refund, number)
        assert refund is not None
        assert (refund.state, refund.method, refund.amount, refund.reference) == (
            RefundState.MADE, "provider", D("998.00"), made["id"],
        )  # fmt: skip
        assert "customer changed mind" in refund.reason
        view = order_view(session, number)
        kinds = session.exec(select(Notification.kind).where(Notification.order_no == number)).all()
    assert _ledger(engine, number) == [("payment", D("-998.00")), ("refund", D("998.00"))]  # the balance is back
    assert view["settlement"] == "refunded" and view["refund"]["state"] == "made"
    assert "refunded" in kinds  # the customer is told
    with read_only(engine) as session:
        assert number not in {r.order_no for r in refunds_due(session)}  # nothing left for finance


async def test_a_refund_over_the_approval_amount_waits_for_a_signed_finance_decision(
    client: Client, engine: Engine, tmp_path: Path, simulator_url: str, task_queue: str
) -> None:
    settings = make_settings(tmp_path, simulator_url, task_queue=task_queue, refund_approval_over=D("500.00"))
    number = _number("REFUND-BIG")
    async with running_worker(client, engine, settings, task_queue):
        await _paid_then_cancelled(client, number, task_queue, reference=f"BANK-{number}")
        waiting = await _refund_state(client, number, RefundState.AWAITING_APPROVAL)
        assert (waiting.amount, waiting.needs_approval) == (D("998.00"), True)
        with read_only(engine) as session:
            assert [r.total for r in refunds_to_approve(session) if r.order_no == number] == [D("998.00")]
            asked = session.exec(
                select(Notification.kind).where(Notification.order_no == number, Notification.kind == "refund_approval")
            ).all()
        assert asked  # finance was asked
        assert not [r for r in await _provider_refunds(settings) if r["idempotency_key"] == f"refund:{number}"]
        with pytest.raises(Refused) as unsigned:  # signed with another secret: the worker's guard refuses it
            await order_commands.decide_refund(
                client,
                engine,
                number,
                user="fiona",
                role="finance",
                decision="approve",
                comment="",
                secret="not-the-secret",
            )
        assert unsigned.value.kind == ErrorType.UNSIGNED_DECISION
        with pytest.raises(Refused) as sales:
            await order_commands.decide_refund(
                client, engine, number, user="alice", role="sales", decision="approve", comment="",
                secret=settings.decision_secret,
            )  # fmt: skip
        assert sales.value.kind == ErrorType.FORBIDDEN
        decided = await order_commands.decide_refund(
            client, engine, number, user="fiona", role="finance", decision="approve", comment="ok",
            secret=settings.decision_secret,
        )  # fmt: skip
        assert decided.decided_by == "fiona"
        result = await client.get_workflow_handle(refund_workflow_id(number), result_type=RefundView).result()
    assert result.state == RefundState.MADE
    with Session(engine) as session:
        refund = session.get(Refund, number)
        assert refund is not None and (refund.state, refund.decided_by) == (RefundState.MADE, "fiona")
        refused = session.exec(
            select(ApprovalRecord).where(ApprovalRecord.order_no == number, col(ApprovalRecord.accepted).is_(False))
        ).all()
    # both refusals audited on the order: the forged signature by the worker's guard, the sales rep's by the API path
    assert {(r.by, r.refusal_reason.startswith("refund decision:")) for r in refused} == {
        ("fiona", True),
        ("alice", True),
    }
    assert _ledger(engine, number)[-1] == ("refund", D("998.00"))


async def test_a_refund_the_provider_refuses_is_left_for_finance_to_make_by_hand(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    number = _number("REFUND-NO")
    reference = f"BANK-{number}"
    async with httpx.AsyncClient() as http:
        refused = await http.post(
            f"{settings.payment_provider_url}/refusals", json={"payment": reference, "message": "card account closed"}
        )
        assert refused.status_code < 300, refused.text
    async with running_worker(client, engine, settings, task_queue):
        await _paid_then_cancelled(client, number, task_queue, reference=reference)
        result = await client.get_workflow_handle(refund_workflow_id(number), result_type=RefundView).result()
    assert result.state == RefundState.FAILED
    with read_only(engine) as session:
        [due] = [r for r in refunds_due(session) if r.order_no == number]
    assert due.total == D("998.00") and "card account closed" in due.detail
    assert _ledger(engine, number) == [("payment", D("-998.00"))]  # nothing paid back yet
    with unit_of_work(engine) as session:
        record_refund(session, number, reference="ICBC-TRANSFER-1", by="fiona", at=due.since)
    with Session(engine) as session:
        refund = session.get(Refund, number)
        assert refund is not None and (refund.state, refund.method, refund.made_by) == (
            RefundState.MADE,
            "manual",
            "fiona",
        )
    assert _ledger(engine, number) == [("payment", D("-998.00")), ("refund", D("998.00"))]


async def test_a_refund_finance_declines_pays_nothing_and_says_why(
    client: Client, engine: Engine, tmp_path: Path, simulator_url: str, task_queue: str
) -> None:
    settings = make_settings(tmp_path, simulator_url, task_queue=task_queue, refund_approval_over=D("500.00"))
    number = _number("REFUND-DECLINED")
    async with running_worker(client, engine, settings, task_queue):
        await _paid_then_cancelled(client, number, task_queue, reference=f"BANK-{number}")
        await _refund_state(client, number, RefundState.AWAITING_APPROVAL)
        with pytest.raises(Refused) as silent:
            await order_commands.decide_refund(
                client, engine, number, user="fiona", role="finance", decision="reject", comment=" ",
                secret=settings.decision_secret,
            )  # fmt: skip
        assert silent.value.kind == ErrorType.INVALID
        declined = await order_commands.decide_refund(
            client, engine, number, user="fiona", role="finance", decision="reject",
            comment="paid back by the shop in cash", secret=settings.decision_secret,
        )  # fmt: skip
        assert (declined.state, declined.decided_by) == (RefundState.DECLINED, "fiona")
        result = await client.get_workflow_handle(refund_workflow_id(number), result_type=RefundView).result()
    assert result.state == RefundState.DECLINED
    assert not [r for r in await _provider_refunds(settings) if r["idempotency_key"] == f"refund:{number}"]
    with Session(engine) as session:
        refund = session.get(Refund, number)
        assert refund is not None and (refund.state, refund.why) == (
            RefundState.DECLINED,
            "paid back by the shop in cash",
        )
    assert _ledger(engine, number) == [("payment", D("-998.00"))]  # nothing paid back through us
