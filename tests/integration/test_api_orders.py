"""The order routes over HTTP (in-process ASGI) against the real database, worker and time-skipping server:
intake idempotency, field errors, tokens and roles, signed decisions, and every refusal audited."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.db import unit_of_work
from domain.decision_signing import sign_decision
from models.contracts import DecisionInput
from models.status import OrderStatus, Role
from models.tables import ApprovalRecord
from services import order_commands
from services.billing.ledger import CreditPosition, credit_positions
from services.users import add_user
from tests.support.orders import make_order
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import order_workflow_id

BIG = [("SKU-1018", 2, "12999.00")]  # 25,998: a finance approval


def bearer(engine: Engine, role: Role, name: str | None = None) -> dict[str, str]:
    with unit_of_work(engine) as session:
        secret = add_user(session, name or f"{role.value}-{uuid.uuid4().hex[:6]}", role)
    return {"Authorization": f"Bearer {secret}"}


def body(number: str, lines: list[tuple[str, int, str]] | None = None, **fields: Any) -> dict[str, Any]:
    return make_order(number, lines, **fields).model_dump(mode="json")


def refusals(engine: Engine, number: str) -> list[ApprovalRecord]:
    with Session(engine) as session:
        rows = session.exec(
            select(ApprovalRecord).where(ApprovalRecord.order_no == number).order_by(col(ApprovalRecord.id))
        ).all()
    return [row for row in rows if not row.accepted]


async def workflow_exists(client: Client, number: str) -> bool:
    try:
        await client.get_workflow_handle(order_workflow_id(number)).describe()
        return True
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


async def test_intake_is_idempotent_and_refuses_bad_orders_without_starting_anything(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str
) -> None:
    async with running_worker(client, engine, settings, task_queue):
        await _intake(api, engine, client)


async def _intake(api: httpx.AsyncClient, engine: Engine, client: Client) -> None:
    number = f"T-IN-{uuid.uuid4().hex[:8]}"
    sales = bearer(engine, Role.OPS)  # an integration (ops may submit any rep's orders)
    rep = f"rep-{uuid.uuid4().hex[:6]}"
    own = bearer(engine, Role.SALES, rep)  # a sales rep submits their own orders only, never as paid
    assert (await api.post("/orders", json=body(number), headers=own)).status_code == 403  # alice's order
    assert (await api.post("/orders", json=body(number))).status_code == 401
    assert (await api.post("/orders", json=body(number), headers=bearer(engine, Role.WAREHOUSE))).status_code == 403
    assert not await workflow_exists(client, number)

    first = await api.post("/orders", json=body(number), headers={**sales, "Idempotency-Key": "k-1"})
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer == {"order_no": number, "workflow_id": f"order-{number}", "status": "RECEIVED"}
    again = await api.post("/orders", json=body(number), headers={**sales, "Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["workflow_id"] == answer["workflow_id"]
    # The same number with other content, or the same key for another order: 409, nothing started.
    other = body(number, [("SKU-1002", 1, "499.00")])
    assert (await api.post("/orders", json=other, headers=sales)).status_code == 409
    second = f"T-IN-{uuid.uuid4().hex[:8]}"
    reused = await api.post("/orders", json=body(second), headers={**sales, "Idempotency-Key": "k-1"})
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["detail"]
    assert not await workflow_exists(client, second)

    # Client-controlled fields that would skip steps: a sales token may not declare an order paid, and
    # nobody may take a channel's order numbers through POST /orders.
    paid = body(second, payment={"method": "prepaid", "paid": True}, sales_rep=rep)
    refused_paid = await api.post("/orders", json=paid, headers=own)
    assert refused_paid.status_code == 403 and "as paid" in refused_paid.json()["detail"]
    squat = await api.post("/orders", json=body(f"SHOPIFY-{uuid.uuid4().int % 10**12}"), headers=sales)
    assert squat.status_code == 422 and "webhooks" in squat.json()["detail"]
    nul = await api.post("/orders", json={**body(second), "customer_id": "C-1001\u0000"}, headers=sales)
    assert nul.status_code == 422 and "control character" in nul.text
    unauthenticated_nul = await api.post(
        f"/orders/{number}/decision", json={"decision": "approve", "comment": "\u0000"}
    )
    assert unauthenticated_nul.status_code == 422
    assert not await workflow_exists(client, second)

    bad = body(second)
    bad["lines"][0]["qty"] = 0
    bad["lines"][0]["unit_price"] = "-1"
    bad["currency"] = "yuan"
    del bad["customer_id"]
    bad["surprise"] = 1
    refused = await api.post("/orders", json=bad, headers=sales)
    assert refused.status_code == 422
    fields = {tuple(str(part) for part in error["loc"][1:]) for error in refused.json()["detail"]}
    assert fields == {
        ("lines", "0", "qty"),
        ("lines", "0", "unit_price"),
        ("currency",),
        ("customer_id",),
        ("surprise",),
    }
    assert not await workflow_exists(client, second)
    # Python's JSON reader takes NaN and Infinity: echoed back in the field errors, they must not break the answer.
    not_finite = await api.post(
        "/orders",
        content=b'{"order_no": Infinity, "lines": [{"qty": NaN}]}',
        headers={**sales, "Content-Type": "application/json"},
    )
    assert not_finite.status_code == 422 and '"inf"' in not_finite.text
    unknown = await api.get("/orders/NO-SUCH-ORDER", headers=sales)
    assert unknown.status_code == 404

    # The accepted order runs to the warehouse; ops cancel it there (a workflow cut off mid-step would stop
    # time skipping for the whole session).
    handle = client.get_workflow_handle(order_workflow_id(number))
    await wait_for_status(handle, OrderStatus.PICKING)
    view = await api.get(f"/orders/{number}", headers=sales)
    for _ in range(50):  # the view reads the read model, which the record step writes just after the workflow moves
        if view.status_code != 200 or view.json()["status"] == OrderStatus.PICKING:
            break
        await asyncio.sleep(0.1)
        view = await api.get(f"/orders/{number}", headers=sales)
    assert view.status_code == 200 and view.json()["status"] == OrderStatus.PICKING
    cancelled = await api.post(f"/orders/{number}/cancel", json={"reason": "test"}, headers=bearer(engine, Role.OPS))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == OrderStatus.CANCELLED
    assert (await handle.result())["status"] == OrderStatus.CANCELLED


async def test_decisions_need_a_token_the_right_role_and_the_apis_signature(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str
) -> None:
    number = f"T-DEC-{uuid.uuid4().hex[:8]}"
    rep = f"rep-{uuid.uuid4().hex[:6]}"  # a finance clerk who is also this order's sales rep
    own = bearer(engine, Role.FINANCE, rep)
    finance = bearer(engine, Role.FINANCE)
    approve = {"decision": "approve", "comment": "ok"}
    async with running_worker(client, engine, settings, task_queue):
        sent = await api.post("/orders", json=body(number, BIG, sales_rep=rep), headers=bearer(engine, Role.OPS))
        assert sent.status_code == 202, sent.text
        handle = client.get_workflow_handle(order_workflow_id(number))
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        path = f"/orders/{number}/decision"

        assert (await api.post(path, json=approve)).status_code == 401
        forged = {"Authorization": "Bearer not-a-token"}
        assert (await api.post(path, json=approve, headers=forged)).status_code == 401
        wrong_role = await api.post(path, json=approve, headers=bearer(engine, Role.WAREHOUSE))
        assert wrong_role.status_code == 403 and "cannot decide the finance level" in wrong_role.json()["detail"]
        own_order = await api.post(path, json=approve, headers=own)
        assert own_order.status_code == 403 and "own sales rep" in own_order.json()["detail"]
        no_comment = await api.post(path, json={"decision": "reject", "comment": " "}, headers=finance)
        assert no_comment.status_code == 422

        # Around the API, straight to Temporal: no signature, a forged one, one copied from another order.
        decision = DecisionInput(decision="approve", by="fiona", role="finance", comment="", level=1)
        elsewhere = sign_decision(
            settings.decision_secret,
            workflow_id="order-OTHER",
            level=1,
            decision="approve",
            by="fiona",
            role="finance",
            comment="",
        )
        for signature in ("", "0" * 64, elsewhere):
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update("decide", decision.model_copy(update={"signature": signature}))
            assert getattr(refused.value.cause, "type", None) == "UnsignedDecision"
        state = await api.get(f"/orders/{number}", headers=finance)
        assert state.json()["status"] == OrderStatus.AWAITING_APPROVAL

        taken = await api.post(path, json={"decision": "approve", "comment": "within budget"}, headers=finance)
        assert taken.status_code == 200, taken.text
        assert taken.json()["status"] not in (OrderStatus.AWAITING_APPROVAL, OrderStatus.REJECTED)
        late = await api.post(path, json=approve, headers=bearer(engine, Role.FINANCE))
        assert late.status_code == 409 and "not awaiting a decision" in late.json()["detail"]

        await wait_for_status(handle, OrderStatus.PICKING)
        warehouse = bearer(engine, Role.WAREHOUSE)
        assert (await api.post(f"/orders/{number}/cancel", json={"reason": "x"}, headers=warehouse)).status_code == 403
        other_rep = await api.post(f"/orders/{number}/cancel", json={"reason": "x"}, headers=bearer(engine, Role.SALES))
        assert other_rep.status_code == 403 and "only their own orders" in other_rep.json()["detail"]
        dispatched = await api.post(
            f"/orders/{number}/dispatch",
            json={"warehouse": "WH-SH", "carrier": "sim", "tracking_no": f"API{uuid.uuid4().hex[:8]}"},
            headers=warehouse,
        )
        assert dispatched.status_code == 200, dispatched.text
        unknown_carrier = await api.post(
            f"/orders/{number}/dispatch",
            json={"warehouse": "WH-SH", "carrier": "pigeon", "tracking_no": "P1"},
            headers=warehouse,
        )
        assert unknown_carrier.status_code == 422
        late_cancel = await api.post(f"/orders/{number}/cancel", json={"reason": "too late"}, headers=finance)
        assert late_cancel.status_code == 409
        assert (await handle.result())["status"] == OrderStatus.COMPLETED

    for _ in range(50):  # the worker audits what Temporal refused in its validators a moment later
        found = refusals(engine, number)
        if len(found) >= 9:
            break
        await asyncio.sleep(0.1)
    # The API audits what it refused or saw refused, in order; the worker audits what Temporal refused around it.
    around = sorted(row.refusal_reason for row in found if row.by == "fiona")
    assert len(around) == 3 and all(row.role == "finance" for row in found if row.by == "fiona")
    assert "invalid decision signature" in around[0] and "invalid decision signature" in around[1]
    assert "unsigned decision" in around[2]
    audited = [(row.by, row.role, row.refusal_reason) for row in found if row.by != "fiona"]
    assert [(by, role) for by, role, _ in audited[:2]] == [("(no token)", ""), ("(invalid token)", "")]
    reasons = [why for _, _, why in audited]
    assert "cannot decide the finance level" in reasons[2]
    assert audited[3][0] == rep and "own sales rep" in reasons[3]
    assert "needs a comment" in reasons[4]
    assert "not awaiting a decision" in reasons[5] and len(audited) == 6
    assert all(row.at.tzinfo is not None for row in found)


async def test_a_paid_invoice_leaves_the_customers_exposure(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str
) -> None:
    """Today's defect, fixed: a credit order's amount used to stay in its customer's exposure for ever. Dispatched,
    it is invoiced (exposure unchanged: from "to bill" to receivables); paid in two parts through the API, the
    exposure is back where it was before the order — and a payment sent twice is booked once."""
    number = f"T-PAY-{uuid.uuid4().hex[:8]}"
    finance = bearer(engine, Role.FINANCE)
    with Session(engine) as session:
        before = credit_positions(session, ["C-1001"]).get("C-1001", CreditPosition()).exposure
    async with running_worker(client, engine, settings, task_queue):
        sent = await api.post(
            "/orders", json=body(number, [("SKU-1001", 2, "199.00")]), headers=bearer(engine, Role.OPS)
        )
        assert sent.status_code == 202, sent.text
        handle = client.get_workflow_handle(order_workflow_id(number))
        await wait_for_status(handle, OrderStatus.PICKING)
        path = f"/orders/{number}/payment"
        early = await api.post(path, json={"reference": "BANK-EARLY"}, headers=finance)
        assert early.status_code == 409 and "no open invoice" in early.json()["detail"]
        await order_commands.dispatch(client, number, warehouse="WH-SH", carrier="sim", tracking_no=f"PAY{number[-8:]}")
        await wait_for_status(handle, OrderStatus.DISPATCHED, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED)

        assert (await api.post(path, json={"reference": "BANK-1", "amount": "100.00"})).status_code == 401
        wrong = await api.post(
            path, json={"reference": "BANK-1", "amount": "100.00"}, headers=bearer(engine, Role.WAREHOUSE)
        )
        assert wrong.status_code == 403
        part = await api.post(path, json={"reference": "BANK-1", "amount": "100.00"}, headers=finance)
        assert part.status_code == 200, part.text
        [invoice] = part.json()["invoices"]
        assert part.json()["payment"]["applied"] == [{"invoice_no": invoice["invoice_no"], "amount": "100.00"}]
        again = await api.post(path, json={"reference": "BANK-1", "amount": "100.00"}, headers=finance)
        assert again.status_code == 200 and again.json()["payment"]["recorded_before"] is True
        reused = await api.post(path, json={"reference": "BANK-1", "amount": "5.00"}, headers=finance)
        assert reused.status_code == 409 and "already booked" in reused.json()["detail"]
        bad = await api.post(path, json={"reference": "BANK-2", "amount": "-1"}, headers=finance)
        assert bad.status_code == 422
        rest = await api.post(path, json={"reference": "BANK-2"}, headers=finance)  # what is left open
        assert rest.status_code == 200 and rest.json()["payment"]["amount"] == "298.00", rest.text
        assert [e["kind"] for e in rest.json()["ledger"]] == ["invoice", "payment", "payment"]
        assert part.json()["settlement"] == "partially paid" and rest.json()["settlement"] == "paid"
        done = await api.post(path, json={"reference": "BANK-3", "amount": "1.00"}, headers=finance)
        assert done.status_code == 409 and "no open invoice" in done.json()["detail"]
    with Session(engine) as session:
        after = credit_positions(session, ["C-1001"]).get("C-1001", CreditPosition()).exposure
    assert after == before
