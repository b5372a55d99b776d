"""A worker SIGKILLed while it is locking stock: after restarts every order is allocated exactly once or
backordered, never twice (issue 3, item 6).

Real everything: a Temporal dev server (the venv's `temporal` binary), a SQLite file, and `python worker.py`
as a child process, SIGKILLed (two to four times) the moment it has committed a lock, while other allocations
are waiting for the write lock; a fresh worker takes over each time. A killed worker's allocations come back
only when their start-to-close timeout (workflows/steps.py ALLOCATING, 60 s) expires, so the test takes about
85 s; every wait below is bounded, and the test's own timeout is the sum of those bounds.

Why the final count is exact: every order wants 2 units of one SKU that has 60 units in six odd-sized lots
across three warehouses (split allowed), so an order is covered exactly when 2 units are left anywhere.
Writers are serialised (SQLite BEGIN IMMEDIATE) and nothing is released here, so stock only goes down:
the first 30 locks succeed and every later look is short. A backordered order re-checks every 2 s
(ORDERFLOW_BACKORDER_RECHECK), so an order that lost a race it should have won would still end allocated.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.codec import data_converter
from core.config import Settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.secrets import with_local_secrets
from dev.seed import seed
from models.status import OrderStatus
from models.tables import OrderEvent, PickList, Reservation, ReservationState, SalesOrder, StockLot
from services import order_commands
from tests.conftest import binary
from tests.support.orders import make_order
from tests.support.worker_process import WorkerProcesses, worker_env
from workflows import contract
from workflows.order import OrderFulfillment
from workflows.steps import ALLOCATING

SKU = "SKU-1001"
ORDERS = 40
QTY = 2
# (warehouse, lot) -> on hand: 60 units, odd lots, so many orders split across lots or warehouses.
STOCK = {
    ("WH-SH", "L2609-001"): 13,
    ("WH-SH", "L2610-001"): 9,
    ("WH-BJ", "L2609-001"): 11,
    ("WH-BJ", "L2610-001"): 7,
    ("WH-GZ", "L2609-001"): 9,
    ("WH-GZ", "L2610-001"): 11,
}
UNITS = sum(STOCK.values())
EXPECTED_ALLOCATED = min(ORDERS, UNITS // QTY)  # 30
SETTLED = {OrderStatus.PICKING.value, OrderStatus.BACKORDERED.value}
RECHECK_SECONDS = 2
MAX_KILLS = 4
KILL_WAIT = 40.0  # a fresh worker's first lock (it takes the allocations nobody had started at once)
# Every order settles once the killed workers' allocations time out and are retried (backoff 1 s) and run.
SETTLE_WAIT = ALLOCATING.start_to_close.total_seconds() + 30
RECHECK_WAIT = 30.0  # every backordered order has looked at the stock again
BUDGET = 30 + MAX_KILLS * KILL_WAIT + SETTLE_WAIT + RECHECK_WAIT + 30  # dev server, checks and teardown around


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: list[str] = []

    def mark(self, what: str) -> None:
        self.marks.append(f"{time.monotonic() - self.t0:6.2f}s {what}")

    def __str__(self) -> str:
        return "\n".join(self.marks)


class Probe:
    """Read-only looks at the SQLite file while the worker writes (WAL: readers never block the writer)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=10)

    def scalar(self, sql: str) -> int:
        return int(self.db.execute(sql).fetchone()[0] or 0)

    def locking_orders(self) -> set[str]:
        return {number for (number,) in self.db.execute("SELECT order_no FROM reservations WHERE state = 'locked'")}

    def orders_in(self, status: OrderStatus) -> set[str]:
        return {number for (number,) in self.db.execute("SELECT order_no FROM orders WHERE status = ?", (status,))}

    def statuses(self) -> Counter[str]:
        return Counter(status for (status,) in self.db.execute("SELECT status FROM orders"))

    def close(self) -> None:
        self.db.close()


async def wait_until(
    check: Callable[[], bool], timeout: float, what: str, workers: WorkerProcesses, interval: float = 0.005
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{workers.tail()}")
        if workers.started[-1].poll() is not None:
            raise AssertionError(f"the worker died on its own while waiting for {what}\n{workers.tail()}")
        await asyncio.sleep(interval)


def kill_at_next_lock(
    worker: subprocess.Popen[bytes], db_path: Path, rows_before: int, timeout: float, workers: WorkerProcesses
) -> None:
    """SIGKILL the worker as soon as a reservation row beyond `rows_before` is committed.

    A tight loop on its own connection (a read costs microseconds in WAL mode), so the kill usually lands
    before the worker has reported the committed allocation to Temporal.
    """
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None, timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0] <= rows_before:
            if worker.poll() is not None:
                raise AssertionError(f"the worker died on its own before locking anything\n{workers.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no lock after {timeout:.0f}s\n{workers.tail()}")
            time.sleep(0.0005)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        db.close()
    worker.wait(timeout=10)


def put_stock(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        seed(engine, console_passwords=False)
        with unit_of_work(engine) as session:
            lots = session.exec(select(StockLot).where(StockLot.sku == SKU)).all()
            assert {(lot.warehouse, lot.lot) for lot in lots} == set(STOCK), "the seed's lots of SKU-1001 changed"
            for lot in lots:
                lot.on_hand = STOCK[(lot.warehouse, lot.lot)]
                session.add(lot)
    finally:
        engine.dispose()


ALLOCATED_PART = re.compile(r"^(\d+)x(\S+)@([^/]+)/(\S+)$")


def check_ledger(url: str, numbers: list[str]) -> dict[str, str]:
    """Every order holds exactly its quantity (PICKING) or nothing (BACKORDERED), once; returns the statuses."""
    engine = make_engine(url)
    try:
        with unit_of_work(engine) as session:
            orders = {o.order_no: o.status for o in session.exec(select(SalesOrder))}
            reservations = session.exec(select(Reservation).order_by(col(Reservation.id))).all()
            lots = {lot.id: lot for lot in session.exec(select(StockLot).where(StockLot.sku == SKU))}
            events: dict[str, list[OrderEvent]] = defaultdict(list)
            for event in session.exec(select(OrderEvent).order_by(col(OrderEvent.order_no), col(OrderEvent.seq))):
                events[event.order_no].append(event)
            pick_lists: dict[str, list[PickList]] = defaultdict(list)
            for pick_list in session.exec(select(PickList)):
                pick_lists[pick_list.order_no].append(pick_list)
    finally:
        engine.dispose()

    assert sorted(orders) == numbers
    statuses = Counter(orders.values())
    assert statuses == {"PICKING": EXPECTED_ALLOCATED, "BACKORDERED": ORDERS - EXPECTED_ALLOCATED}, statuses

    # No row twice: one reservation per (order, line, lot), keyed as such, and all of them still locked.
    triples = Counter((r.order_no, r.line_no, r.lot_id) for r in reservations)
    assert [t for t, n in triples.items() if n > 1] == []
    assert all(r.key == f"{r.order_no}:{r.line_no}:{r.lot_id}" for r in reservations)
    assert {r.state for r in reservations} <= {ReservationState.LOCKED.value}
    assert {r.sku for r in reservations} <= {SKU} and {r.lot_id for r in reservations} <= set(lots)

    held: dict[str, list[Reservation]] = defaultdict(list)
    for reservation in reservations:
        held[reservation.order_no].append(reservation)
    for number, status in orders.items():
        mine = held.get(number, [])
        kinds = [event.status for event in events[number]]
        assert [event.seq for event in events[number]] == list(range(1, len(kinds) + 1)), (number, kinds)
        if status == OrderStatus.PICKING:
            assert sum(r.qty for r in mine) == QTY and all(r.qty > 0 for r in mine), (number, mine)
            assert kinds == ["RECEIVED", "APPROVED", "ALLOCATED", "PICKING"], (number, kinds)
            # What the workflow was told it holds (the ALLOCATED event) is exactly what the ledger holds.
            [allocated] = [event for event in events[number] if event.status == OrderStatus.ALLOCATED]
            told = sorted(
                (int(qty), sku, warehouse, lot)
                for qty, sku, warehouse, lot in (
                    ALLOCATED_PART.match(part).groups()  # type: ignore[union-attr]
                    for part in allocated.detail.split(", ")
                )
            )
            ledger = sorted((r.qty, r.sku, r.warehouse, lots[r.lot_id].lot) for r in mine)
            assert told == ledger, (number, told, ledger)
            # And the pick lists are for exactly those units, one list per warehouse.
            picked = sorted(
                (line["qty"], line["sku"], pl.warehouse, line["lot"]) for pl in pick_lists[number] for line in pl.lines
            )
            assert picked == ledger, (number, picked, ledger)
        else:
            assert mine == [], (number, mine)
            assert kinds == ["RECEIVED", "APPROVED", "BACKORDERED"], (number, kinds)
            assert pick_lists[number] == []

    # Odd lots: some orders hold two rows (split across lots or warehouses), all or nothing.
    assert any(len(rows) > 1 for rows in held.values()), "no order was split: the lots no longer test that"

    # Never more than on hand, per lot and in total; the ledger balances.
    per_lot: Counter[int] = Counter()
    for reservation in reservations:
        per_lot[reservation.lot_id] += reservation.qty
    over = {lot_id: (qty, lots[lot_id].on_hand) for lot_id, qty in per_lot.items() if qty > lots[lot_id].on_hand}
    assert over == {}, over
    assert sum(per_lot.values()) == EXPECTED_ALLOCATED * QTY <= UNITS
    return orders


async def history_facts(client: Client, workflow_id: str) -> tuple[list[str], dict[str, int]]:
    """Workflow task failures (non-determinism, workflow bugs) and the highest attempt per activity type."""
    failures: list[str] = []
    scheduled: dict[int, str] = {}
    attempts: dict[str, int] = defaultdict(int)
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failure = event.workflow_task_failed_event_attributes.failure
            failures.append(f"{workflow_id}: workflow task failed: {failure.message}")
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            name = scheduled[attrs.scheduled_event_id]
            attempts[name] = max(attempts[name], attrs.attempt)
    return failures, dict(attempts)


async def allocation_looks(handle: WorkflowHandle[Any, Any]) -> int:
    """How many allocate_stock activities of this order have completed (each one a look at the stock)."""
    scheduled: set[int] = set()
    completed = 0
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            if event.activity_task_scheduled_event_attributes.activity_type.name == "allocate_stock":
                scheduled.add(event.event_id)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed += event.activity_task_completed_event_attributes.scheduled_event_id in scheduled
    return completed


async def allocations_running(handles: list[WorkflowHandle[Any, Any]]) -> set[str]:
    """Orders whose allocate_stock activity a worker had started and not reported (just after a kill)."""
    descriptions = await asyncio.gather(*(handle.describe() for handle in handles))
    return {
        handle.id.removeprefix("order-")
        for handle, description in zip(handles, descriptions, strict=True)
        if any(
            pending.activity_type.name == "allocate_stock"
            and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for pending in description.raw_description.pending_activities
        )
    }


async def terminate_all(handles: list[WorkflowHandle[Any, Any]]) -> None:
    for handle in handles:
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate(reason="test teardown")
        except RPCError:
            continue


@pytest.mark.timeout(BUDGET)
async def test_worker_killed_while_locking_allocates_each_order_once_or_backorders_it(tmp_path: Path) -> None:
    clock = Clock()
    db_path = tmp_path / "orderflow.db"
    url = f"sqlite:///{db_path}"
    put_stock(url)
    task_queue = "killed-worker"

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        search_attributes=contract.SEARCH_ATTRIBUTES,
        # the worker processes' keys (same state dir)
        data_converter=data_converter(with_local_secrets(Settings(state_dir=tmp_path))),
    )
    clock.mark("dev server up")
    client = env.client
    workers = WorkerProcesses(
        worker_env(
            temporal_address=client.service_client.config.target_host,
            database_url=url,
            task_queue=task_queue,
            state_dir=tmp_path,
            backorder_recheck=f"PT{RECHECK_SECONDS}S",
        ),
        tmp_path,
    )
    handles: list[WorkflowHandle[Any, Any]] = []
    probe: Probe | None = None
    try:
        probe = Probe(db_path)
        # Every order is waiting before the first worker comes up, so they all reach allocation together.
        numbers = [f"KILL-{i:03d}" for i in range(1, ORDERS + 1)]
        for number in numbers:
            order = make_order(number, [(SKU, QTY, "199.00")])  # small: auto-approved, no approvals
            handles.append(await order_commands.start(client, order, task_queue))
        clock.mark(f"{ORDERS} orders submitted")

        # Kill each worker the moment its first lock shows in the database: its own allocation has committed
        # but is most likely not yet reported, and other allocations are waiting for the write lock. Repeat
        # (bounded) until some kill has caught a committed-but-unreported lock.
        in_flight: set[str] = set()  # orders whose allocate_stock was running on a worker when it died
        unreported: set[str] = set()  # ... of which the lock had already committed
        for kill in range(1, MAX_KILLS + 1):
            rows_before = probe.scalar("SELECT COUNT(*) FROM reservations")
            worker = workers.start()
            clock.mark(f"worker {kill} started")
            await asyncio.to_thread(kill_at_next_lock, worker, db_path, rows_before, KILL_WAIT, workers)
            locked = probe.locking_orders()
            running = await allocations_running(handles)
            in_flight |= running
            unreported |= running & locked
            clock.mark(
                f"worker {kill} SIGKILLed: {len(locked)} orders hold locks, allocate_stock was running for "
                f"{sorted(running)}, committed for {sorted(running & locked)}; orders {dict(probe.statuses())}"
            )
            assert len(locked) < EXPECTED_ALLOCATED, "the kill came after allocation was over: nothing tested"
            if kill >= 2 and unreported:
                break
        assert in_flight, f"no allocation was running when the workers died: nothing tested\n{clock}"
        assert unreported, f"no kill caught a committed, unreported lock in {MAX_KILLS} tries\n{clock}"

        workers.start()
        clock.mark("last worker started")

        def settled() -> bool:
            statuses = probe.statuses()
            return (
                sum(statuses.values()) == ORDERS
                and set(statuses) <= SETTLED
                and statuses[OrderStatus.PICKING.value] >= EXPECTED_ALLOCATED
            )

        try:
            await wait_until(settled, SETTLE_WAIT, "every order PICKING or BACKORDERED", workers, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\norders {dict(probe.statuses())}\n{clock}") from None
        clock.mark(f"settled: {dict(probe.statuses())}")
        # Every backordered order looks at the stock again (one more allocate_stock each) and nothing moves.
        before = (probe.statuses(), probe.scalar("SELECT COUNT(*) FROM reservations"))
        waiting = [h for h in handles if h.id.removeprefix("order-") in probe.orders_in(OrderStatus.BACKORDERED)]
        looks = {h.id: await allocation_looks(h) for h in waiting}
        deadline = time.monotonic() + RECHECK_WAIT
        for handle in waiting:
            while await allocation_looks(handle) <= looks[handle.id]:
                assert time.monotonic() < deadline, f"{handle.id} never looked at the stock again\n{clock}"
                await asyncio.sleep(0.2)
        assert (probe.statuses(), probe.scalar("SELECT COUNT(*) FROM reservations")) == before
        clock.mark(f"stable while {len(waiting)} backordered orders looked again")

        statuses_in_db = check_ledger(url, numbers)

        # The workflows agree with the database, and none failed or hit a workflow task failure.
        failures: list[str] = []
        allocate_retried: list[str] = []
        for handle, number in zip(handles, numbers, strict=True):
            description = await handle.describe()
            assert description.status == WorkflowExecutionStatus.RUNNING, f"{number}: {description.status}"
            state = await handle.query(OrderFulfillment.state)
            assert state.status.value == statuses_in_db[number], f"{number}: workflow {state.status}, db differs"
            task_failures, attempts = await history_facts(client, handle.id)
            failures += task_failures
            if attempts.get("allocate_stock", 1) > 1:
                allocate_retried.append(number)
        assert not failures, "\n".join(failures)
        # Every allocation a kill interrupted was run again by a later worker (attempt > 1), and the checks
        # above show that each retry of a committed lock returned that lock instead of taking stock again.
        assert in_flight <= set(allocate_retried), (sorted(in_flight), allocate_retried)
        clock.mark(f"histories checked; allocate_stock retried for {allocate_retried}")
        sys.stdout.write(f"\n{clock}\n")  # shown with -s
    finally:
        if probe is not None:
            probe.close()
        try:
            await terminate_all(handles)
        finally:
            workers.stop_all()
            await env.shutdown()
