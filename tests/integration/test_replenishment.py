"""Backorders and replenishment (issue 3): requisitions raised once, reorder points, receipts that wake the
waiting orders oldest first. Real workflows on the time-skipping server, real SQLite."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from core.config import Settings
from models.status import OrderStatus
from models.tables import Notification, PurchaseRequisition, Reservation, ReservationState
from services import order_commands, stock
from services.errors import CommandError
from services.queries.inventory import inventory_view
from services.stock import Receipt
from tests.support.cleanup import StartedOrders
from tests.support.orders import make_order
from tests.support.waiting import wait_for_status
from worker import running_worker

SCARCE = "SKU-1024"  # seeded: 10 units, all in WH-GZ; reorder level 50


def number(prefix: str) -> str:
    return f"T-{prefix}-{uuid.uuid4().hex[:8]}"


def requisitions(engine: Engine) -> list[PurchaseRequisition]:
    with Session(engine) as session:
        return list(session.exec(select(PurchaseRequisition).order_by(col(PurchaseRequisition.id))).all())


def locked(engine: Engine, order_no: str) -> int:
    with Session(engine) as session:
        rows = session.exec(
            select(Reservation).where(Reservation.order_no == order_no, Reservation.state == ReservationState.LOCKED)
        ).all()
    return sum(r.qty for r in rows)


def replenishment_notices(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.exec(select(Notification).where(Notification.kind == "replenishment")).all())


async def test_backorders_raise_one_requisition_and_a_receipt_serves_the_oldest_order_first(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    older, younger = number("OLD"), number("YOUNG")
    async with running_worker(client, engine, settings, task_queue):
        first = await orders.start(make_order(older, [(SCARCE, 12, "299.00")]), task_queue)
        await wait_for_status(first, OrderStatus.BACKORDERED)
        # A re-check with no new stock (as the periodic one does) raises nothing new.
        assert await order_commands.notify_restock(client, [older], [SCARCE]) == []
        assert (await order_commands.live_state(client, older)).allocation_attempts == 2
        second = await orders.start(make_order(younger, [(SCARCE, 11, "299.00")]), task_queue)
        await wait_for_status(second, OrderStatus.BACKORDERED)
        # The workflow answers BACKORDERED as it starts writing the read model's row: wait for the row too.
        deadline = time.monotonic() + 10
        while stock.backordered_orders(engine, SCARCE) != [older, younger]:
            assert time.monotonic() < deadline, stock.backordered_orders(engine, SCARCE)
            await asyncio.sleep(0.05)

        [requisition] = requisitions(engine)
        # Ship-to 华东: the Shanghai warehouse asks; the shortfall of the bigger order (12 - 10) plus the
        # reorder level of 50; the younger order (short 1) found it open and did not ask again.
        assert (requisition.sku, requisition.warehouse, requisition.reason) == (SCARCE, "WH-SH", "backorder")
        assert (requisition.qty, requisition.order_no, requisition.state) == (52, older, "open")
        assert [n.recipient for n in replenishment_notices(engine)] == ["olga"]  # purchasing (ops), once
        with Session(engine) as session:
            assert inventory_view(session, SCARCE)["incoming"] == 52

        # 3 units arrive in Guangzhou: 13 in all. Oldest first, the older order (12) is served and the
        # younger one (11) waits; the other way round, the younger would have taken 11 and left 2.
        booked = stock.receive(engine, Receipt(sku=SCARCE, warehouse="WH-GZ", qty=3, lot="L-RCV-1"))
        assert booked["requisitions_closed"] == []  # the open requisition is for WH-SH
        waiting = stock.backordered_orders(engine, SCARCE)
        assert waiting == [older, younger]
        assert await order_commands.notify_restock(client, waiting, [SCARCE]) == [older]
        await wait_for_status(first, OrderStatus.PICKING)
        assert locked(engine, older) == 12 and locked(engine, younger) == 0
        assert (await order_commands.live_state(client, younger)).status == OrderStatus.BACKORDERED

        # The Shanghai receipt closes the requisition and serves the younger order.
        booked = stock.receive(engine, Receipt(sku=SCARCE, warehouse="WH-SH", qty=52, lot="L-RCV-2"))
        assert booked["requisitions_closed"] == [requisition.id]
        assert await order_commands.notify_restock(client, stock.backordered_orders(engine, SCARCE), [SCARCE]) == [
            younger
        ]
        state = await wait_for_status(second, OrderStatus.PICKING)
        assert state.awaiting_dispatch == ["WH-SH"]
        # End them here (a workflow cut off mid-compensation by the teardown would leave the time-skipping server
        # locked for every later test), both cancelled before waiting for either: awaiting a result lets the
        # server skip time, and the other order's dispatch deadline would run out meanwhile.
        for handle in (first, second):
            await order_commands.cancel(client, handle.id.removeprefix("order-"), reason="test over")
        for handle in (first, second):
            await handle.result()
    closed = [r for r in requisitions(engine) if r.id == requisition.id][0]
    assert closed.state == "received" and closed.open_key is None and closed.closed_at is not None


async def test_reorder_point_raises_one_requisition_per_sku_and_warehouse(
    client: Client, engine: Engine, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    guangzhou = {**make_order("X").ship_to.model_dump(), "region": "华南", "province": "广东", "city": "广州"}
    first, second = number("RP1"), number("RP2")
    async with running_worker(client, engine, settings, task_queue):
        handles = []
        for order_no in (first, second):
            handle = await orders.start(make_order(order_no, [(SCARCE, 1, "299.00")], ship_to=guangzhou), task_queue)
            await wait_for_status(handle, OrderStatus.PICKING)
            handles.append(handle)
        # Both cancelled before waiting for either: awaiting a result lets the test server skip time, and the
        # other order's dispatch wait would run out meanwhile.
        for order_no in (first, second):
            await order_commands.cancel(client, order_no, reason="test over")
        for handle in handles:
            await handle.result()  # finished here, not cut off by the teardown (see the test above)
    # After the first order 9 are available (< 50): ask for 41; after the second 8: the open one grows to 42.
    [requisition] = requisitions(engine)
    assert (requisition.sku, requisition.warehouse, requisition.reason) == (SCARCE, "WH-GZ", "reorder_point")
    assert (requisition.qty, requisition.order_no) == (42, first)
    [notice] = replenishment_notices(engine)
    assert notice.recipient == "olga" and "41 x SKU-1024 for WH-GZ" in notice.body


async def test_receipt_refuses_unknown_sku_or_warehouse_and_changes_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        before = inventory_view(session, SCARCE)
    with pytest.raises(CommandError, match="unknown SKU"):
        stock.receive(engine, Receipt(sku="SKU-NOPE", warehouse="WH-GZ", qty=1, lot="L1"))
    with pytest.raises(CommandError, match="unknown warehouse"):
        stock.receive(engine, Receipt(sku=SCARCE, warehouse="WH-XX", qty=1, lot="L1"))
    with Session(engine) as session:
        assert inventory_view(session, SCARCE) == before
    again = stock.receive(engine, Receipt(sku=SCARCE, warehouse="WH-GZ", qty=4, lot="L-SAME"))
    more = stock.receive(engine, Receipt(sku=SCARCE, warehouse="WH-GZ", qty=6, lot="L-SAME"))
    assert again["lot_id"] == more["lot_id"]  # more of the same lot adds to it
    with Session(engine) as session:
        assert inventory_view(session, SCARCE)["on_hand"] == before["on_hand"] + 10
