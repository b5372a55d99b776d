"""OrderFulfillment paths on the time-skipping server, with a real SQLite database and the carrier simulator.

Every order number and tracking number is unique per test: the Temporal test server and the carrier
simulator live for the whole session, so a reused id would meet an earlier test's workflow or parcel.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import Client, WorkflowHandle

from activities.records import RecordActivities
from core.config import Settings
from core.db import read_only
from models.contracts import FulfillmentResult, TransitionInput
from models.status import OrderStatus, Role
from models.tables import (
    ApprovalRecord,
    Customer,
    Notification,
    PickList,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
    StockLot,
)
from services import order_commands
from services.automation import store as automation_store
from services.automation.dry_run import dry_run
from services.errors import Refused
from services.notify.writer import NoticeWriter
from services.queries.inbox import ApprovalTodo, approval_todos
from services.queries.inventory import inventory_view
from services.queries.order_view import order_view
from services.users import add_user
from tests.support.automations import dispatching, runs_of, worker_and_default_rules
from tests.support.cleanup import StartedOrders
from tests.support.orders import SHANGHAI, make_order
from tests.support.refunds import refund_finished
from tests.support.waiting import wait_for_status, wait_until_parked
from tests.support.workers import running_worker_with
from worker import running_worker

# --- helpers --------------------------------------------------------------------------------------


async def todos_for(
    engine: Engine, order_no: str, role: Role, expected: int = 1, level: int | None = None
) -> list[ApprovalTodo]:
    """The order's approval to-dos for `role`, once the read model shows `expected` of them (it is written by the
    transition that follows the workflow's move, a moment after the update answers)."""
    deadline = time.monotonic() + 10
    while True:
        with read_only(engine) as session:
            found = [
                t
                for t in approval_todos(session, role.value)
                if t.order_no == order_no and (level is None or t.level == level)
            ]
        if len(found) == expected or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


def order_no(prefix: str) -> str:
    return f"T-{prefix}-{uuid.uuid4().hex[:10]}"


def tracking_no() -> str:
    return f"SIM{uuid.uuid4().hex[:12].upper()}"


def approvals(engine: Engine, number: str) -> list[ApprovalRecord]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(ApprovalRecord).where(ApprovalRecord.order_no == number).order_by(col(ApprovalRecord.id))
            ).all()
        )


def reservations(engine: Engine, number: str) -> list[Reservation]:
    with Session(engine) as session:
        return list(session.exec(select(Reservation).where(Reservation.order_no == number)).all())


def locked_qty(engine: Engine, number: str) -> int:
    return sum(r.qty for r in reservations(engine, number) if r.state == ReservationState.LOCKED)


def available(engine: Engine, sku: str) -> int:
    with Session(engine) as session:
        return int(inventory_view(session, sku)["available"])


def notification_kinds(engine: Engine, number: str) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Notification.kind).where(Notification.order_no == number)).all())


def order_row(engine: Engine, number: str) -> SalesOrder:
    with Session(engine) as session:
        row = session.get(SalesOrder, number)
        assert row is not None, f"order {number} has no row"
        return row


def timeline(engine: Engine, number: str) -> list[str]:
    with Session(engine) as session:
        return [step["status"] for step in order_view(session, number)["timeline"]]


def receive_stock(engine: Engine, sku: str, qty: int, warehouse: str = "WH-GZ") -> None:
    """A goods receipt, as the receiving process writes it: a new lot with stock on hand."""
    with Session(engine) as session:
        session.add(
            StockLot(
                warehouse=warehouse,
                sku=sku,
                bin="C-12-31",
                lot=f"L-RCV-{uuid.uuid4().hex[:8]}",
                received_at=datetime.now(UTC),
                on_hand=qty,
            )
        )
        session.commit()


async def cancel_and_finish(
    client: Client, handle: WorkflowHandle[Any, FulfillmentResult], number: str
) -> FulfillmentResult:
    """End an order that is parked waiting for people, so nothing is left running on the shared server."""
    state = await order_commands.cancel(client, number, reason="test over", by="olga")
    assert state.status == OrderStatus.CANCELLED
    result = await handle.result()
    await refund_finished(client, number)  # a paid order's refund, too
    return result


# --- approvals ------------------------------------------------------------------------------------


async def test_finance_level_refuses_own_rep_and_wrong_role_then_finance_approves(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("FIN")
    order = make_order(number, [("SKU-1018", 2, "12999.00")])  # 25,998: over 10k, under 50k
    assert 10000 < order.total <= 50000
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        state = await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        assert state.pending_approval is not None
        assert (state.pending_approval.level, state.pending_approval.role) == (1, Role.FINANCE)

        with pytest.raises(Refused, match="own sales rep"):
            await order_commands.decide(
                client,
                engine,
                number,
                user="alice",
                decision="approve",
                comment="mine",
                secret=settings.decision_secret,
            )
        with pytest.raises(Refused, match="role warehouse cannot decide the finance level"):
            await order_commands.decide(
                client, engine, number, user="wang", decision="approve", comment="ok", secret=settings.decision_secret
            )
        state = await order_commands.live_state(client, number)
        assert state.status == OrderStatus.AWAITING_APPROVAL  # refusals changed nothing

        state = await order_commands.decide(
            client,
            engine,
            number,
            user="fiona",
            decision="approve",
            comment="within budget",
            secret=settings.decision_secret,
        )
        assert state.status not in (OrderStatus.AWAITING_APPROVAL, OrderStatus.REJECTED, OrderStatus.CANCELLED)
        await wait_for_status(handle, OrderStatus.PICKING)
        assert locked_qty(engine, number) == 2
        await cancel_and_finish(client, handle, number)

    records = approvals(engine, number)
    refused = [r for r in records if not r.accepted]
    assert [(r.by, r.role, r.decision) for r in refused] == [
        ("alice", "sales", "approve"),
        ("wang", "warehouse", "approve"),
    ]
    assert "own sales rep" in refused[0].refusal_reason
    assert "cannot decide the finance level" in refused[1].refusal_reason
    accepted = [r for r in records if r.accepted]
    assert len(accepted) == 1
    audit = accepted[0]
    assert (audit.level, audit.role, audit.by, audit.decision, audit.comment) == (
        1,
        "finance",
        "fiona",
        "approve",
        "within budget",
    )
    assert audit.at.tzinfo is not None and audit.refusal_reason == ""
    statuses = timeline(engine, number)
    assert statuses[:5] == ["RECEIVED", "AWAITING_APPROVAL", "APPROVED", "ALLOCATED", "PICKING"]


async def test_director_level_after_finance_with_four_eyes(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    with Session(engine) as session:  # a second finance clerk, who has not decided anything on these orders
        add_user(session, "felix", Role.FINANCE)
        session.commit()
    two_step = order_no("DIR")
    same_person = order_no("DIR4E")
    lines = [("SKU-1018", 5, "12999.00")]  # 64,995: finance, then finance director
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(two_step, lines), task_queue)
        other = await orders.start(make_order(same_person, lines), task_queue)

        # Order 1: fiona decides the finance level, felix (finance) may not decide the director level.
        state = await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        assert state.pending_approval is not None and state.pending_approval.role == Role.FINANCE
        # The approvers' to-dos follow the levels: finance's first (with the rule that fired), then the director's.
        [todo] = await todos_for(engine, two_step, Role.FINANCE)
        assert todo.level == 1 and "finance_over_10k" in todo.reasons and todo.until is not None
        # The director may decide a finance level too (and gets it when it is overdue): it is on her list as well.
        assert [t.level for t in await todos_for(engine, two_step, Role.FINANCE_DIRECTOR)] == [1]
        # A decision for the level a stale page showed is refused, not applied to the level the order is at now.
        with pytest.raises(Refused):
            await order_commands.decide(
                client, engine, two_step, user="fiona", decision="approve", comment="", level=2,
                secret=settings.decision_secret,
            )  # fmt: skip
        state = await order_commands.decide(
            client, engine, two_step, user="fiona", decision="approve", comment="ok", secret=settings.decision_secret
        )
        assert state.status == OrderStatus.AWAITING_APPROVAL
        assert state.pending_approval is not None
        assert (state.pending_approval.level, state.pending_approval.role) == (2, Role.FINANCE_DIRECTOR)
        [todo] = await todos_for(engine, two_step, Role.FINANCE_DIRECTOR, level=2)
        assert await todos_for(engine, two_step, Role.FINANCE, expected=0) == []  # finance cannot decide it
        with pytest.raises(Refused, match="role finance cannot decide the finance_director level"):
            await order_commands.decide(
                client, engine, two_step, user="felix", decision="approve", comment="", secret=settings.decision_secret
            )
        with pytest.raises(Refused, match="four-eyes"):
            await order_commands.decide(
                client, engine, two_step, user="fiona", decision="approve", comment="", secret=settings.decision_secret
            )
        await order_commands.decide(
            client,
            engine,
            two_step,
            user="derek",
            decision="approve",
            comment="big deal",
            secret=settings.decision_secret,
        )
        await wait_for_status(handle, OrderStatus.PICKING)
        assert await todos_for(engine, two_step, Role.FINANCE_DIRECTOR, expected=0) == []  # decided: off the list

        # Order 2: derek may decide the finance level, but then not the director level too.
        state = await wait_for_status(other, OrderStatus.AWAITING_APPROVAL)
        await order_commands.decide(
            client,
            engine,
            same_person,
            user="derek",
            decision="approve",
            comment="fin ok",
            secret=settings.decision_secret,
        )
        with pytest.raises(Refused, match="four-eyes"):
            await order_commands.decide(
                client,
                engine,
                same_person,
                user="derek",
                decision="approve",
                comment="",
                secret=settings.decision_secret,
            )
        state = await order_commands.live_state(client, same_person)
        assert state.status == OrderStatus.AWAITING_APPROVAL
        assert state.pending_approval is not None and state.pending_approval.role == Role.FINANCE_DIRECTOR

        await cancel_and_finish(client, handle, two_step)
        await cancel_and_finish(client, other, same_person)

    accepted = [(r.level, r.role, r.by) for r in approvals(engine, two_step) if r.accepted]
    assert accepted == [(1, "finance", "fiona"), (2, "finance_director", "derek")]
    refused = [(r.by, r.role) for r in approvals(engine, two_step) if not r.accepted]
    # fiona's decision for a stale level 2, felix's wrong role, fiona's second level (four-eyes): all audited
    assert refused == [("fiona", "finance"), ("felix", "finance"), ("fiona", "finance")]
    assert [(r.level, r.by, r.accepted) for r in approvals(engine, same_person)] == [
        (1, "derek", True),
        (2, "derek", False),  # refused at the level it was pending
    ]
    assert "AWAITING_APPROVAL" in timeline(engine, same_person) and "APPROVED" not in timeline(engine, same_person)


async def test_finance_rejects_with_comment_and_nothing_is_allocated(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("REJ")
    before = available(engine, "SKU-1018")
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1018", 1, "12999.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        with pytest.raises(Refused, match="needs a comment"):
            await order_commands.decide(
                client, engine, number, user="fiona", decision="reject", comment="  ", secret=settings.decision_secret
            )
        state = await order_commands.decide(
            client,
            engine,
            number,
            user="fiona",
            decision="reject",
            comment="customer disputes last invoice",
            secret=settings.decision_secret,
        )
        assert state.status == OrderStatus.REJECTED
        result = await handle.result()
    assert result.status == OrderStatus.REJECTED
    assert "customer disputes last invoice" in result.reasons[-1]
    assert reservations(engine, number) == []
    assert available(engine, "SKU-1018") == before
    row = order_row(engine, number)
    assert row.status == OrderStatus.REJECTED and "customer disputes last invoice" in " ".join(row.reasons)
    records = approvals(engine, number)
    assert [(r.by, r.decision, r.accepted) for r in records] == [
        ("fiona", "reject", False),
        ("fiona", "reject", True),
    ]
    assert records[1].comment == "customer disputes last invoice"
    statuses = timeline(engine, number)
    assert "APPROVED" not in statuses and "ALLOCATED" not in statuses and statuses[-1] == "REJECTED"
    assert "rejected" in notification_kinds(engine, number)


async def test_credit_hold_needs_finance_then_continues(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("CREDIT")
    # C-1005: limit 50,000 with 47,500 receivable; 5,697 more is over the limit but under every approval rule.
    order = make_order(number, [("SKU-1003", 3, "1899.00")], customer_id="C-1005")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        state = await wait_for_status(handle, OrderStatus.CREDIT_HOLD)
        assert state.pending_approval is not None
        assert state.pending_approval.role == Role.FINANCE and state.pending_approval.credit_hold
        assert any("credit hold" in reason for reason in state.reasons)
        [todo] = await todos_for(engine, number, Role.FINANCE)  # finance sees the hold and why
        assert todo.credit_hold and any("over limit 50000.00" in reason for reason in todo.reasons), todo.reasons
        assert todo.exposure > todo.credit_limit == 50000
        with pytest.raises(Refused):
            await order_commands.decide(
                client, engine, number, user="bob", decision="approve", comment="", secret=settings.decision_secret
            )
        await order_commands.decide(
            client,
            engine,
            number,
            user="fiona",
            decision="approve",
            comment="paid on time",
            secret=settings.decision_secret,
        )
        await wait_for_status(handle, OrderStatus.PICKING)
        assert locked_qty(engine, number) == 3
        await cancel_and_finish(client, handle, number)
    statuses = timeline(engine, number)
    assert statuses[:3] == ["RECEIVED", "CREDIT_HOLD", "APPROVED"]
    assert [(r.role, r.by) for r in approvals(engine, number) if r.accepted] == [("finance", "fiona")]


async def test_sample_order_over_10k_needs_no_approval(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("SAMPLE")
    order = make_order(number, [("SKU-1018", 1, "12999.00")], order_type="sample")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        state = await wait_for_status(handle, OrderStatus.PICKING, OrderStatus.AWAITING_APPROVAL)
        assert state.status == OrderStatus.PICKING and state.pending_approval is None
        await cancel_and_finish(client, handle, number)
    assert timeline(engine, number)[:4] == ["RECEIVED", "APPROVED", "ALLOCATED", "PICKING"]
    assert approvals(engine, number) == []


# --- prepayment -----------------------------------------------------------------------------------


async def test_new_customer_prepays_then_continues(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("PREPAY")
    order = make_order(number, [("SKU-1002", 2, "499.00")], customer_id="C-2001")  # payment method: credit
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        state = await wait_for_status(handle, OrderStatus.AWAITING_PAYMENT)
        assert state.pending_approval is None
        assert locked_qty(engine, number) == 0
        await order_commands.pay(client, number, reference="BANK-778899", by="fiona")
        await wait_for_status(handle, OrderStatus.PICKING)
        assert locked_qty(engine, number) == 2
        with pytest.raises(Refused, match="not awaiting payment"):
            await order_commands.pay(client, number, reference="BANK-778899")
        await cancel_and_finish(client, handle, number)
    row = order_row(engine, number)
    assert row.paid
    with Session(engine) as session:
        customer = session.get(Customer, "C-2001")
        assert customer is not None and not customer.first_order  # accepted once: no longer new
    statuses = timeline(engine, number)
    assert statuses[:3] == ["RECEIVED", "AWAITING_PAYMENT", "AWAITING_PAYMENT"]  # the payment is its own event
    assert statuses[3:6] == ["APPROVED", "ALLOCATED", "PICKING"]
    kinds = notification_kinds(engine, number)
    assert "payment_requested" in kinds and "refund" in kinds  # cancelled after payment: finance refunds


async def test_unpaid_order_is_cancelled_at_the_payment_deadline(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("NOPAY")
    order = make_order(number, [("SKU-1002", 2, "499.00")], customer_id="C-2001")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        await wait_for_status(handle, OrderStatus.AWAITING_PAYMENT)
        result = await handle.result()  # time skips through the 3-day payment deadline
        assert result.status == OrderStatus.CANCELLED
        with pytest.raises(Refused):
            await order_commands.pay(client, number, reference="TOO-LATE")
    assert "payment deadline" in result.reasons[-1]
    assert reservations(engine, number) == []
    row = order_row(engine, number)
    assert row.status == OrderStatus.CANCELLED and not row.paid
    assert "refund" not in notification_kinds(engine, number)
    with Session(engine) as session:
        customer = session.get(Customer, "C-2001")
        assert customer is not None and customer.first_order


async def test_payment_when_not_awaiting_payment_is_refused(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("PAYNOT")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1018", 1, "12999.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        with pytest.raises(Refused, match="not awaiting payment"):
            await order_commands.pay(client, number, reference="X-1")
        assert (await order_commands.live_state(client, number)).status == OrderStatus.AWAITING_APPROVAL
        await cancel_and_finish(client, handle, number)
    assert not order_row(engine, number).paid


# --- validation -----------------------------------------------------------------------------------

BAD_ORDERS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown-sku": ({"lines": [("SKU-9999", 1, "10.00")]}, ["unknown SKU SKU-9999"]),
    "inactive-sku": ({"lines": [("SKU-1099", 1, "99.00")]}, ["SKU SKU-1099 is not active"]),
    "empty-address": (
        {"ship_to": {**SHANGHAI, "address": "", "phone": ""}},
        ["ship-to address incomplete: missing phone, address"],
    ),
    "price-out-of-policy": ({"lines": [("SKU-1001", 1, "150.00")]}, ["unit price 150.00 for SKU-1001 is outside"]),
    "all-at-once": (
        {
            "lines": [("SKU-9999", 1, "10.00"), ("SKU-1099", 1, "99.00"), ("SKU-1001", 2, "250.00")],
            "ship_to": {**SHANGHAI, "address": ""},
        },
        [
            "ship-to address incomplete: missing address",
            "line 1: unknown SKU SKU-9999",
            "line 2: SKU SKU-1099 is not active",
            "line 3: unit price 250.00 for SKU-1001 is outside",
        ],
    ),
}


@pytest.mark.parametrize("case", list(BAD_ORDERS))
async def test_invalid_order_is_rejected_with_reasons(
    case: str, client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    fields, expected = BAD_ORDERS[case]
    number = order_no("BAD")
    order = make_order(number, fields.get("lines"), **{k: v for k, v in fields.items() if k != "lines"})
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        result = await handle.result()
    assert result.status == OrderStatus.REJECTED
    assert len(result.reasons) == len(expected)  # one entry per reason, in the order validation found them
    for reason, stated in zip(expected, result.reasons, strict=True):
        assert reason in stated, f"{reason!r} not in {stated!r}"
    row = order_row(engine, number)
    assert row.status == OrderStatus.REJECTED
    assert row.reasons == result.reasons
    assert timeline(engine, number) == ["RECEIVED", "REJECTED"]
    assert reservations(engine, number) == []
    assert "rejected" in notification_kinds(engine, number)


# --- cancellation ---------------------------------------------------------------------------------


async def test_cancel_in_picking_releases_stock_and_voids_pick_list(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("CANCEL")
    before = available(engine, "SKU-1001")
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1001", 7, "199.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        assert available(engine, "SKU-1001") == before - 7
        with Session(engine) as session:
            assert session.exec(select(PickList.state).where(PickList.order_no == number)).all() == ["issued"]
        state = await order_commands.cancel(client, number, reason="customer changed mind", by="alice")
        assert state.status == OrderStatus.CANCELLED
        result = await handle.result()
    assert result.status == OrderStatus.CANCELLED
    assert "customer changed mind" in result.reasons[-1]
    assert available(engine, "SKU-1001") == before
    assert {r.state for r in reservations(engine, number)} == {ReservationState.RELEASED}
    with Session(engine) as session:
        assert session.exec(select(PickList.state).where(PickList.order_no == number)).all() == ["voided"]
    assert timeline(engine, number)[-1] == "CANCELLED"
    assert order_row(engine, number).status == OrderStatus.CANCELLED
    assert "cancelled" in notification_kinds(engine, number)


async def test_cancel_after_dispatch_is_refused(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("LATECANCEL")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1001", 1, "199.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        await order_commands.dispatch(client, number, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no())
        # Refused while in transit, or as closed if the (quick) simulated parcel was already delivered.
        with pytest.raises(Refused, match="can no longer be cancelled|is closed"):
            await order_commands.cancel(client, number, reason="too late", by="alice")
        result = await handle.result()
    assert result.status == OrderStatus.COMPLETED
    assert "CANCELLED" not in timeline(engine, number)


# --- backorders -----------------------------------------------------------------------------------


async def test_backorder_resumes_on_restock(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("BACK")
    on_hand = available(engine, "SKU-1024")
    assert on_hand == 10  # seeded: two lots of 5 in WH-GZ
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1024", 12, "299.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.BACKORDERED)
        assert locked_qty(engine, number) == 0
        receive_stock(engine, "SKU-1024", 10)
        await order_commands.notify_restock(client, [number], ["SKU-1024"])
        state = await wait_for_status(handle, OrderStatus.PICKING)
        assert state.awaiting_dispatch == ["WH-GZ"]
        assert locked_qty(engine, number) == 12
        await cancel_and_finish(client, handle, number)
    statuses = timeline(engine, number)
    assert statuses[:5] == ["RECEIVED", "APPROVED", "BACKORDERED", "ALLOCATED", "PICKING"]
    with Session(engine) as session:
        notices = session.exec(
            select(Notification).where(Notification.order_no == number, Notification.kind == "backordered")
        ).all()
    # the ops role: in her inbox, and by mail (the seeded olga has an address and wants mail)
    assert sorted((n.channel, n.recipient) for n in notices) == [
        ("email", "olga@staff.orderflow.test"),
        ("internal", "olga"),
    ]
    assert all("SKU-1024 short 2" in n.body for n in notices)


async def test_restock_signalled_while_the_backorder_is_being_recorded_is_not_lost(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    """Ops may restock the moment the order shows BACKORDERED, before the workflow's own bookkeeping for
    the backorder (its status row) has finished. That signal must still trigger a re-check: on this server
    time does not move while we wait, so a lost signal leaves the order BACKORDERED."""
    real = RecordActivities(engine, settings)

    @activity.defn(name="record_transition")
    def slow_backorder_row(inp: TransitionInput) -> None:
        if inp.status == OrderStatus.BACKORDERED:
            time.sleep(0.5)  # a slow database
        real.record_transition(inp)

    number = order_no("BACKRACE")
    async with (
        running_worker_with(client, engine, settings, task_queue, replace={"record_transition": slow_backorder_row}),
        dispatching(engine, client, settings, defaults=True),
    ):
        handle = await orders.start(make_order(number, [("SKU-1024", 12, "299.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.BACKORDERED)
        receive_stock(engine, "SKU-1024", 10)
        await order_commands.notify_restock(client, [number], ["SKU-1024"])
        await wait_for_status(handle, OrderStatus.PICKING, timeout=10)
        assert locked_qty(engine, number) == 12
        await cancel_and_finish(client, handle, number)
    assert "backordered" in notification_kinds(engine, number)  # the default rule told ops


async def test_backorder_deadline_cancels_with_nothing_reserved(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("BACKDEAD")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1024", 11, "299.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.BACKORDERED)
        result = await handle.result()  # time skips through the 6-hour rechecks to the 14-day deadline
    assert result.status == OrderStatus.CANCELLED
    assert "backorder deadline" in result.reasons[-1]
    assert reservations(engine, number) == []
    assert available(engine, "SKU-1024") == 10
    statuses = timeline(engine, number)
    assert statuses.count("BACKORDERED") == 1 and statuses[-1] == "CANCELLED"


# --- split shipments ------------------------------------------------------------------------------


async def test_split_shipment_from_two_warehouses(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    sku = "SKU-1016"
    with Session(engine) as session:
        per_warehouse = dict(
            session.exec(
                select(StockLot.warehouse, func.sum(StockLot.on_hand))
                .where(StockLot.sku == sku)
                .group_by(col(StockLot.warehouse))
            ).all()
        )
    qty = 500
    assert max(per_warehouse.values()) < qty <= per_warehouse["WH-SH"] + per_warehouse["WH-BJ"], per_warehouse
    number = order_no("SPLIT")
    first, second = tracking_no(), tracking_no()
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True),  # the dispatch notice is a default automation
    ):
        handle = await orders.start(make_order(number, [(sku, qty, "39.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)  # 19,500: finance
        await order_commands.decide(
            client, engine, number, user="fiona", decision="approve", comment="", secret=settings.decision_secret
        )
        state = await wait_for_status(handle, OrderStatus.PICKING)
        # Ship-to 华东: Shanghai first, then Beijing (1,200 km) before Guangzhou (1,400 km).
        assert state.awaiting_dispatch == ["WH-BJ", "WH-SH"]
        by_warehouse: dict[str, int] = {}
        for res in reservations(engine, number):
            by_warehouse[res.warehouse] = by_warehouse.get(res.warehouse, 0) + res.qty
        assert by_warehouse == {"WH-SH": per_warehouse["WH-SH"], "WH-BJ": qty - per_warehouse["WH-SH"]}

        state = await order_commands.dispatch(client, number, warehouse="WH-SH", carrier="sim", tracking_no=first)
        assert state.awaiting_dispatch == ["WH-BJ"] and state.status == OrderStatus.PICKING
        with pytest.raises(Refused, match="awaits no dispatch from WH-GZ"):
            await order_commands.dispatch(client, number, warehouse="WH-GZ", carrier="sim", tracking_no=second)
        with pytest.raises(Refused, match="awaits no dispatch from WH-SH"):
            await order_commands.dispatch(client, number, warehouse="WH-SH", carrier="sim", tracking_no=second)
        with pytest.raises(Refused, match="already used"):
            await order_commands.dispatch(client, number, warehouse="WH-BJ", carrier="sim", tracking_no=first)
        state = await order_commands.dispatch(client, number, warehouse="WH-BJ", carrier="sim", tracking_no=second)
        assert state.awaiting_dispatch == []
        result = await handle.result()
        deadline = time.monotonic() + 20
        told = runs_of(engine, "dispatched-tell-customer", number)
        while len(told) < 2 or {run.state for run in told} != {"completed"}:
            assert time.monotonic() < deadline, told
            await asyncio.sleep(0.05)
            told = runs_of(engine, "dispatched-tell-customer", number)
    assert result.status == OrderStatus.COMPLETED
    # One notice per parcel, as the workflow sent it: e-mail and SMS, each with its own parcel's number.
    assert sorted(run.facts["tracking_no"] for run in told) == sorted([first, second])
    with Session(engine) as session:
        sent = session.exec(
            select(Notification).where(Notification.order_no == number, Notification.kind == "dispatched")
        ).all()
        assert sorted((n.channel, first in n.body, second in n.body) for n in sent) == [
            ("email", False, True),
            ("email", True, False),
            ("sms", False, True),
            ("sms", True, False),
        ]
        assert all("/track/" in n.body for n in sent if n.channel == "email")  # the tracking page's link
        # The dry run shows the template's texts for the latest parcel; it writes nothing.
        [stored] = [r for r in automation_store.current(session) if r.rule.name == "dispatched-tell-customer"]
        tried = dry_run(session, stored.rule, number, datetime.now(UTC), NoticeWriter.load(settings))
    assert tried.branch == 1 and tried.actions[0]["template"] == "dispatched"
    assert second in tried.actions[0]["sms"] and second in tried.actions[0]["text"]  # the latest parcel's
    with Session(engine) as session:
        shipments = session.exec(select(Shipment).where(Shipment.order_no == number)).all()
        assert sorted((s.warehouse, s.tracking_no, s.status) for s in shipments) == sorted(
            [("WH-SH", first, "DELIVERED"), ("WH-BJ", second, "DELIVERED")]
        )
        assert all(s.signed_by and s.signed_at for s in shipments)
        left = dict(
            session.exec(
                select(StockLot.warehouse, func.sum(StockLot.on_hand))
                .where(StockLot.sku == sku)
                .group_by(col(StockLot.warehouse))
            ).all()
        )
    assert left == {
        "WH-SH": 0,
        "WH-BJ": per_warehouse["WH-BJ"] - (qty - per_warehouse["WH-SH"]),
        "WH-GZ": per_warehouse["WH-GZ"],
    }
    assert {r.state for r in reservations(engine, number)} == {ReservationState.CONSUMED}
    statuses = timeline(engine, number)
    assert statuses.count("DISPATCHED") == 1 and statuses[-2:] == ["DELIVERED", "COMPLETED"]


async def test_tracking_number_of_another_order_and_unknown_carrier_are_refused(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    first, second = order_no("TRK-A"), order_no("TRK-B")
    parcel = tracking_no()
    async with running_worker(client, engine, settings, task_queue):
        handle_a = await orders.start(make_order(first), task_queue)
        handle_b = await orders.start(make_order(second), task_queue)
        await wait_for_status(handle_a, OrderStatus.PICKING)
        await wait_for_status(handle_b, OrderStatus.PICKING)
        await order_commands.dispatch(client, first, warehouse="WH-SH", carrier="sim", tracking_no=parcel)
        with pytest.raises(Refused, match=f"already belongs to order {first}"):
            await order_commands.dispatch(client, second, warehouse="WH-SH", carrier="sim", tracking_no=parcel)
        with pytest.raises(Refused, match="unknown carrier ups"):
            await order_commands.dispatch(client, second, warehouse="WH-SH", carrier="ups", tracking_no=tracking_no())
        state = await order_commands.live_state(client, second)
        assert state.status == OrderStatus.PICKING and state.awaiting_dispatch == ["WH-SH"]
        await order_commands.dispatch(client, second, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no())
        assert (await handle_a.result()).status == OrderStatus.COMPLETED
        assert (await handle_b.result()).status == OrderStatus.COMPLETED


async def test_cancel_from_temporal_compensates_like_any_cancel(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    """An operator cancels the workflow in the Temporal UI/CLI: stock is released and the order CANCELLED."""
    number = order_no("TCANCEL")
    before = available(engine, "SKU-1001")
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1001", 2, "199.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        await wait_until_parked(handle)
        assert available(engine, "SKU-1001") == before - 2
        await handle.cancel()
        result = await handle.result()
    assert result.status == OrderStatus.CANCELLED
    assert available(engine, "SKU-1001") == before
    assert timeline(engine, number)[-1] == "CANCELLED"
    with Session(engine) as session:
        picks = session.exec(select(PickList).where(PickList.order_no == number)).all()
    assert [p.state for p in picks] == ["voided"]
