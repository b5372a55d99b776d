"""Exactly-once where it matters: one workflow per order number, one set of reservations per order.

Intake: the same order submitted again answers as before (no second workflow, no second order row or
RECEIVED event); other content under the same number is a conflict. Stock: a retried lock activity finds
its own reservations, and concurrent orders never reserve more than is on hand.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.inventory import InventoryActivities
from core.config import Settings
from models.allocation import Allocation
from models.contracts import AllocateInput, AllocateOutcome, FulfillmentResult
from models.order import Order
from models.status import OrderStatus
from models.tables import OrderEvent, PickList, Reservation, ReservationState, SalesOrder, StockLot
from services import order_commands
from services.errors import OrderConflict
from services.queries.inventory import inventory_view
from tests.support.cleanup import StartedOrders
from tests.support.orders import make_order
from tests.support.waiting import wait_for_status
from tests.support.workers import running_worker_with
from worker import running_worker
from workflows.contract import order_workflow_id


def order_no(prefix: str) -> str:
    return f"T-{prefix}-{uuid.uuid4().hex[:10]}"


def order_rows(engine: Engine, number: str) -> list[SalesOrder]:
    with Session(engine) as session:
        return list(session.exec(select(SalesOrder).where(SalesOrder.order_no == number)).all())


def received_events(engine: Engine, number: str) -> int:
    with Session(engine) as session:
        return len(
            session.exec(
                select(OrderEvent.id).where(OrderEvent.order_no == number, OrderEvent.status == OrderStatus.RECEIVED)
            ).all()
        )


def reservations(engine: Engine, number: str) -> list[Reservation]:
    with Session(engine) as session:
        return list(
            session.exec(select(Reservation).where(Reservation.order_no == number).order_by(col(Reservation.id))).all()
        )


def reserved(engine: Engine, sku: str) -> int:
    with Session(engine) as session:
        return int(inventory_view(session, sku)["reserved"])


async def started_events(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for event in history.events if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)


# --- intake ---------------------------------------------------------------------------------------


async def test_same_order_submitted_twice_runs_one_workflow(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    number = order_no("DUP")
    order = make_order(number, [("SKU-1001", 2, "199.00")])
    async with running_worker(client, engine, settings, task_queue):
        first = await order_commands.submit(client, order, task_queue)
        handle = client.get_workflow_handle(order_workflow_id(order.order_no), result_type=FulfillmentResult)
        run_id = (await handle.describe()).run_id
        # The same payload again, also as it arrives from a channel: re-parsed from JSON.
        again = Order.model_validate_json(order.model_dump_json())
        second = await order_commands.submit(client, again, task_queue)
        assert first.created and not second.created
        assert first.workflow_id == second.workflow_id == order_workflow_id(order.order_no) == f"order-{number}"

        await wait_for_status(handle, OrderStatus.PICKING)
        third = await order_commands.submit(client, order, task_queue)
        assert not third.created and third.status == OrderStatus.PICKING  # answered from the live workflow

        description = await handle.describe()
        assert description.run_id == run_id  # the id still points at the first (and only) run
        assert await started_events(client, order_workflow_id(order.order_no)) == 1
        assert len(order_rows(engine, number)) == 1
        assert received_events(engine, number) == 1
        assert sum(r.qty for r in reservations(engine, number)) == 2

        await order_commands.cancel(client, number, reason="test over")
        result = await handle.result()
    assert result.status == OrderStatus.CANCELLED


async def test_concurrent_duplicate_submissions_create_once(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    number = order_no("RACE")
    order = make_order(number, [("SKU-1001", 1, "199.00")])
    async with running_worker(client, engine, settings, task_queue):
        answers = await asyncio.gather(*(order_commands.submit(client, order, task_queue) for _ in range(6)))
        assert sorted(a.created for a in answers) == [False] * 5 + [True]
        assert {a.workflow_id for a in answers} == {order_workflow_id(order.order_no)}
        handle = client.get_workflow_handle(order_workflow_id(order.order_no), result_type=FulfillmentResult)
        await wait_for_status(handle, OrderStatus.PICKING)
        assert await started_events(client, order_workflow_id(order.order_no)) == 1
        assert len(order_rows(engine, number)) == 1 and received_events(engine, number) == 1
        await order_commands.cancel(client, number, reason="test over")
        await handle.result()


async def test_same_order_no_with_other_content_conflicts(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    number = order_no("CONFLICT")
    order = make_order(number, [("SKU-1001", 2, "199.00")])
    changed = make_order(number, [("SKU-1001", 3, "199.00")])
    async with running_worker(client, engine, settings, task_queue):
        assert (await order_commands.submit(client, order, task_queue)).created
        with pytest.raises(OrderConflict, match="different content"):
            await order_commands.submit(client, changed, task_queue)
        with pytest.raises(OrderConflict):
            await order_commands.submit(
                client, make_order(number, [("SKU-1001", 2, "199.00")], sales_rep="bob"), task_queue
            )
        handle = client.get_workflow_handle(order_workflow_id(order.order_no), result_type=FulfillmentResult)
        await wait_for_status(handle, OrderStatus.PICKING)
        # The first submission is the order: its content, its quantities.
        rows = order_rows(engine, number)
        assert len(rows) == 1 and rows[0].payload["lines"][0]["qty"] == 2 and rows[0].sales_rep == "alice"
        assert sum(r.qty for r in reservations(engine, number)) == 2
        await order_commands.cancel(client, number, reason="test over")
        await handle.result()


async def test_resubmitting_a_finished_order_does_not_start_it_again(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = order_no("DONE")
    order = make_order(number, [("SKU-9999", 1, "10.00")])  # unknown SKU: rejected at once
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        assert (await handle.result()).status == OrderStatus.REJECTED
        answer = await order_commands.submit(client, order, task_queue)
        with pytest.raises(OrderConflict):
            await order_commands.submit(client, make_order(number, [("SKU-1001", 1, "199.00")]), task_queue)
    assert not answer.created and answer.workflow_id == order_workflow_id(order.order_no)
    assert answer.status == OrderStatus.REJECTED
    assert await started_events(client, order_workflow_id(order.order_no)) == 1
    assert len(order_rows(engine, number)) == 1 and received_events(engine, number) == 1


# --- stock locks: a retried activity --------------------------------------------------------------


def test_allocate_stock_twice_reserves_once(engine: Engine, settings: Settings) -> None:
    inventory = InventoryActivities(engine, settings)
    request = AllocateInput(
        order_no=order_no("ALLOC2"),
        ship_to_region="华东",
        lines=[(1, "SKU-1001", 150), (2, "SKU-1006", 5)],  # 150 > the oldest SH lot of SKU-1001: two lots
        allow_split=True,
    )
    before = {sku: reserved(engine, sku) for sku in ("SKU-1001", "SKU-1006")}
    env = ActivityEnvironment()
    first = env.run(inventory.allocate_stock, request)
    rows_after_first = [(r.id, r.key, r.qty) for r in reservations(engine, request.order_no)]
    second = env.run(inventory.allocate_stock, request)

    assert first.allocations and not first.shortages
    assert len({a.lot_id for a in first.allocations if a.sku == "SKU-1001"}) == 2
    assert _by_lot(second.allocations) == _by_lot(first.allocations)
    assert [(r.id, r.key, r.qty) for r in reservations(engine, request.order_no)] == rows_after_first
    assert reserved(engine, "SKU-1001") == before["SKU-1001"] + 150
    assert reserved(engine, "SKU-1006") == before["SKU-1006"] + 5


def _by_lot(allocations: list[Allocation]) -> list[tuple[int, str, int, int]]:
    return sorted((a.line_no, a.sku, a.lot_id, a.qty) for a in allocations)


async def test_lock_retried_after_commit_takes_stock_once(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    """The lock commits, then the answer is lost (worker crash, network): Temporal retries the activity."""
    inventory = InventoryActivities(engine, settings)
    attempts: list[tuple[int, int]] = []

    @activity.defn(name="allocate_stock")
    def allocate_then_lose_the_answer(inp: AllocateInput) -> AllocateOutcome:
        outcome = inventory.allocate_stock(inp)
        attempt = activity.info().attempt
        attempts.append((attempt, sum(a.qty for a in outcome.allocations)))
        if attempt == 1:
            raise RuntimeError("connection reset after the reservations were committed")
        return outcome

    sku, qty = "SKU-1016", 500  # more than any one warehouse holds: several lots in two warehouses
    number = order_no("RETRY")
    order = make_order(number, [(sku, qty, "39.00")])  # 19,500: finance approves first
    before = reserved(engine, sku)
    async with running_worker_with(
        client, engine, settings, task_queue, replace={"allocate_stock": allocate_then_lose_the_answer}
    ):
        handle = await orders.start(order, task_queue)
        await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        await order_commands.decide(
            client, engine, number, user="fiona", decision="approve", comment="", secret=settings.decision_secret
        )
        state = await wait_for_status(handle, OrderStatus.PICKING)
        assert len(state.awaiting_dispatch) == 2
        assert [a for a, _ in attempts] == [1, 2]  # it really was retried
        rows = reservations(engine, number)
        assert sum(r.qty for r in rows) == qty
        assert len({r.key for r in rows}) == len(rows)
        assert all(r.state == ReservationState.LOCKED for r in rows)
        assert reserved(engine, sku) == before + qty
        with Session(engine) as session:
            picked = session.exec(select(PickList).where(PickList.order_no == number)).all()
        assert sum(line["qty"] for pick in picked for line in pick.lines) == qty
        await order_commands.cancel(client, number, reason="test over")
        result = await handle.result()
    assert result.status == OrderStatus.CANCELLED
    assert reserved(engine, sku) == before


# --- stock locks: concurrent orders ---------------------------------------------------------------


def _on_hand(engine: Engine, sku: str) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.sum(StockLot.on_hand)).where(StockLot.sku == sku)).one())


def _run_in_threads(engine: Engine, settings: Settings, requests: list[AllocateInput]) -> list[AllocateOutcome]:
    inventory = InventoryActivities(engine, settings)
    start = threading.Barrier(len(requests))

    def call(request: AllocateInput) -> AllocateOutcome:
        env = ActivityEnvironment()  # one activity context per thread, as a worker's executor would have
        start.wait(timeout=10)
        return env.run(inventory.allocate_stock, request)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(call, requests, timeout=60))


@pytest.mark.parametrize("qty", [3, 4])
def test_concurrent_orders_never_oversell(engine: Engine, settings: Settings, qty: int) -> None:
    sku = "SKU-1024"
    on_hand = _on_hand(engine, sku)
    assert on_hand == 10  # seeded: two lots of 5, WH-GZ only
    requests = [
        AllocateInput(order_no=order_no(f"CONC{i}"), ship_to_region="华南", lines=[(1, sku, qty)], allow_split=True)
        for i in range(20)
    ]
    outcomes = _run_in_threads(engine, settings, requests)

    winners = [o for o in outcomes if o.allocations]
    losers = [o for o in outcomes if not o.allocations]
    assert len(winners) == on_hand // qty
    assert all(sum(a.qty for a in o.allocations) == qty for o in winners)
    assert all(o.shortages for o in losers)
    with Session(engine) as session:
        per_lot = dict(
            session.exec(
                select(Reservation.lot_id, func.sum(Reservation.qty))
                .where(Reservation.sku == sku, Reservation.state == ReservationState.LOCKED)
                .group_by(col(Reservation.lot_id))
            ).all()
        )
        lots = {lot.id: lot.on_hand for lot in session.exec(select(StockLot).where(StockLot.sku == sku)).all()}
    assert all(per_lot[lot_id] <= lots[lot_id] for lot_id in per_lot)
    assert sum(per_lot.values()) == qty * (on_hand // qty) <= on_hand
    for request, outcome in zip(requests, outcomes, strict=True):
        assert sum(r.qty for r in reservations(engine, request.order_no)) == (qty if outcome.allocations else 0)


def test_concurrent_duplicates_of_one_lock_reserve_once(engine: Engine, settings: Settings) -> None:
    """A retry can overlap the attempt it replaces (timeout while the first is still running)."""
    request = AllocateInput(
        order_no=order_no("SAME"), ship_to_region="华南", lines=[(1, "SKU-1024", 7)], allow_split=True
    )
    outcomes = _run_in_threads(engine, settings, [request] * 8)
    first = _by_lot(outcomes[0].allocations)
    assert first and all(_by_lot(o.allocations) == first for o in outcomes)
    assert sum(r.qty for r in reservations(engine, request.order_no)) == 7
    assert reserved(engine, "SKU-1024") == 7
