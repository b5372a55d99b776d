"""No oversell under load, on SQLite and on a real PostgreSQL: the stock-locking activity hammered by threads.

Each call runs InventoryActivities.allocate_stock in its own ActivityEnvironment, from a pool of threads (as a
worker's activity executor would), all released at once. The hot SKUs are new rows with exactly the stock the
test says, so every number below is exact: who won, who was told it is short, and by how much; the ledger
(locked reservations per lot) never exceeds what is on hand, and matches what the inventory view reports.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment

from activities.inventory import InventoryActivities
from core.config import Settings
from core.db import unit_of_work
from models.contracts import AllocateInput, AllocateOutcome, OrderRef
from models.tables import Product, PurchaseRequisition, Reservation, ReservationState, StockLot
from services.queries.inventory import inventory_view

THREADS = 32  # below the engines' pool (tests.support.postgres.PG_POOL_SIZE): no thread waits for a connection
WAVE_TIMEOUT = 40.0  # seconds for a whole wave; a deadlock or a lost wake-up shows up as a timeout here

T = TypeVar("T")


@pytest.fixture
def inventory(engine: Engine, tmp_path: Path) -> InventoryActivities:
    return InventoryActivities(engine, Settings.model_validate({"state_dir": tmp_path}))


# --- helpers --------------------------------------------------------------------------------------------------


def new_sku(engine: Engine, lots: Sequence[tuple[str, int]]) -> str:
    """A product with exactly these lots (warehouse, on hand) and no other stock anywhere."""
    sku = f"SKU-HOT-{uuid.uuid4().hex[:8]}"
    received = datetime(2026, 10, 1, tzinfo=UTC)
    with unit_of_work(engine) as session:
        session.add(Product(sku=sku, name="压测商品", unit_price=Decimal("10.00")))
        session.flush()
        for i, (warehouse, qty) in enumerate(lots):
            session.add(
                StockLot(
                    warehouse=warehouse,
                    sku=sku,
                    bin=f"Z-{i:02d}",
                    lot=f"LH-{i:03d}",
                    received_at=received + timedelta(days=i),
                    on_hand=qty,
                )
            )
    return sku


def order_no(prefix: str, i: int) -> str:
    return f"T-{prefix}-{i:04d}-{uuid.uuid4().hex[:6]}"


def request(number: str, lines: list[tuple[str, int]], region: str = "华东") -> AllocateInput:
    return AllocateInput(
        order_no=number,
        ship_to_region=region,
        lines=[(line_no, sku, qty) for line_no, (sku, qty) in enumerate(lines, start=1)],
        allow_split=True,
    )


def in_threads(fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
    """fn(item) for every item, THREADS at a time, all starting together; results in item order.

    Fails (never hangs) when the wave does not finish within WAVE_TIMEOUT, and re-raises the first error
    (a deadlock reported by Postgres, a 'database is locked' from SQLite, a pool timeout...).
    """
    go = threading.Event()

    def call(item: Any) -> T:
        go.wait()
        return ActivityEnvironment().run(fn, item)  # one activity context per call, as a worker would have

    pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="oversell")
    try:
        futures: list[Future[T]] = [pool.submit(call, item) for item in items]
        go.set()
        done, pending = wait(futures, timeout=WAVE_TIMEOUT, return_when=FIRST_EXCEPTION)
        errors = [error for error in (f.exception() for f in done) if error is not None]
        if errors:
            raise errors[0]
        if pending:
            pytest.fail(f"{len(pending)} of {len(items)} calls still running after {WAVE_TIMEOUT}s (deadlock?)")
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def locked_by_order(engine: Engine, sku: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(Reservation.order_no, func.sum(Reservation.qty))
            .where(Reservation.sku == sku, Reservation.state == ReservationState.LOCKED)
            .group_by(col(Reservation.order_no))
        ).all()
    return {number: int(qty) for number, qty in rows}


def assert_ledger_balanced(engine: Engine, sku: str, expected_locked: int) -> dict[int, int]:
    """No lot holds more locked units than it has on hand; the totals agree with the inventory view.

    Returns the locked units per lot.
    """
    with Session(engine) as session:
        on_hand = {lot.id: lot.on_hand for lot in session.exec(select(StockLot).where(StockLot.sku == sku)).all()}
        locked = {
            lot_id: int(qty)
            for lot_id, qty in session.exec(
                select(Reservation.lot_id, func.sum(Reservation.qty))
                .where(Reservation.sku == sku, Reservation.state == ReservationState.LOCKED)
                .group_by(col(Reservation.lot_id))
            ).all()
        }
        view = inventory_view(session, sku)
    over = {lot_id: (qty, on_hand.get(lot_id)) for lot_id, qty in locked.items() if qty > on_hand.get(lot_id, 0)}
    assert not over, f"lots with more locked than on hand (locked, on hand): {over}"
    assert sum(locked.values()) == expected_locked
    assert view["reserved"] == expected_locked
    assert view["on_hand"] == sum(on_hand.values())
    assert view["available"] == view["on_hand"] - expected_locked >= 0
    return locked


def assert_all_or_nothing(
    engine: Engine, requests: Sequence[AllocateInput], outcomes: Sequence[AllocateOutcome]
) -> None:
    """A winner holds exactly what it asked for, line by line, as its answer says; a loser holds nothing."""
    with Session(engine) as session:
        rows = session.exec(
            select(Reservation).where(
                col(Reservation.order_no).in_([r.order_no for r in requests]),
                Reservation.state == ReservationState.LOCKED,
            )
        ).all()
    held: dict[str, Counter[tuple[int, str, int]]] = {}
    for row in rows:
        held.setdefault(row.order_no, Counter())[(row.line_no, row.sku, row.lot_id)] += row.qty
    for req, outcome in zip(requests, outcomes, strict=True):
        mine = held.get(req.order_no, Counter())
        if outcome.allocations:
            assert not outcome.shortages
            answered = Counter({(a.line_no, a.sku, a.lot_id): a.qty for a in outcome.allocations})
            assert mine == answered, req.order_no
            per_line: Counter[tuple[int, str]] = Counter()
            for (line_no, sku, _), qty in mine.items():
                per_line[(line_no, sku)] += qty
            assert per_line == Counter({(line_no, sku): qty for line_no, sku, qty in req.lines}), req.order_no
        else:
            assert outcome.shortages, f"{req.order_no}: neither allocated nor short"
            assert not mine, f"{req.order_no} was told it is short but holds {dict(mine)}"


# --- the tests ------------------------------------------------------------------------------------------------


def test_500_orders_for_100_units_reserve_exactly_100(engine: Engine, inventory: InventoryActivities) -> None:
    # 100 units in two warehouses (three lots), nothing else anywhere.
    sku = new_sku(engine, [("WH-SH", 30), ("WH-SH", 30), ("WH-BJ", 40)])
    requests = [request(order_no("ONE", i), [(sku, 1)]) for i in range(500)]

    outcomes = in_threads(inventory.allocate_stock, requests)

    winners = [o for o in outcomes if o.allocations]
    losers = [o for o in outcomes if not o.allocations]
    assert len(winners) == 100
    assert len(losers) == 400
    assert all(o.shortages == {sku: 1} for o in losers)
    assert_all_or_nothing(engine, requests, outcomes)
    locked = assert_ledger_balanced(engine, sku, expected_locked=100)
    with Session(engine) as session:
        on_hand = {lot.id: lot.on_hand for lot in session.exec(select(StockLot).where(StockLot.sku == sku)).all()}
    assert locked == on_hand  # every lot emptied, none overdrawn
    assert sorted(locked_by_order(engine, sku).values()) == [1] * 100


def test_orders_over_two_skus_in_opposite_order_neither_deadlock_nor_oversell(
    engine: Engine, inventory: InventoryActivities
) -> None:
    a = new_sku(engine, [("WH-SH", 60), ("WH-BJ", 40)])  # 100 units
    b = new_sku(engine, [("WH-SH", 30), ("WH-GZ", 30)])  # 60 units: B runs out first
    requests = [
        request(order_no("AB" if i % 2 == 0 else "BA", i), [(a, 1), (b, 1)] if i % 2 == 0 else [(b, 1), (a, 1)])
        for i in range(240)
    ]

    started = time.monotonic()
    outcomes = in_threads(inventory.allocate_stock, requests)  # fails on a deadlock (error or timeout)
    elapsed = time.monotonic() - started

    winners = [(req, o) for req, o in zip(requests, outcomes, strict=True) if o.allocations]
    assert len(winners) == 60
    assert {req.order_no.split("-")[1] for req, _ in winners} <= {"AB", "BA"}
    assert all(o.shortages == {b: 1} for o in outcomes if not o.allocations)  # short of B only, by one unit
    assert_all_or_nothing(engine, requests, outcomes)
    assert_ledger_balanced(engine, a, expected_locked=60)
    assert_ledger_balanced(engine, b, expected_locked=60)
    assert locked_by_order(engine, a).keys() == locked_by_order(engine, b).keys()  # both SKUs, or neither
    assert elapsed < WAVE_TIMEOUT


def test_mixed_quantities_are_all_or_nothing(engine: Engine, inventory: InventoryActivities) -> None:
    sku = new_sku(engine, [("WH-SH", 45), ("WH-BJ", 35), ("WH-GZ", 20)])  # 100 units, three warehouses
    rng = random.Random(20261122)
    quantities = [rng.randint(1, 7) for _ in range(250)]  # ~1,000 units asked for
    requests = [request(order_no("MIX", i), [(sku, qty)]) for i, qty in enumerate(quantities)]

    outcomes = in_threads(inventory.allocate_stock, requests)

    assert_all_or_nothing(engine, requests, outcomes)
    won = sum(req.lines[0][2] for req, o in zip(requests, outcomes, strict=True) if o.allocations)
    assert_ledger_balanced(engine, sku, expected_locked=won)
    assert won <= 100
    lost = [(req.lines[0][2], o.shortages) for req, o in zip(requests, outcomes, strict=True) if not o.allocations]
    assert lost, "the test asks for ten times the stock: some orders must be short"
    # A shortage is real: the order was short by at least one unit and at most what it asked for...
    assert all(set(shortages) == {sku} and 1 <= shortages[sku] <= qty for qty, shortages in lost)
    # ...and no unit is left that a refused order could have taken (stock only went down during the wave).
    assert 100 - won < min(qty for qty, _ in lost)


def test_released_units_are_exactly_what_the_next_wave_gets(engine: Engine, inventory: InventoryActivities) -> None:
    sku = new_sku(engine, [("WH-SH", 50), ("WH-BJ", 50)])
    first = [request(order_no("W1", i), [(sku, 1)]) for i in range(150)]
    first_outcomes = in_threads(inventory.allocate_stock, first)
    winners = [req.order_no for req, o in zip(first, first_outcomes, strict=True) if o.allocations]
    assert len(winners) == 100
    before = assert_ledger_balanced(engine, sku, expected_locked=100)

    # Release every other winner, each twice at the same time (a compensation retried while still running).
    released, kept = winners[::2], winners[1::2]
    with Session(engine) as session:
        freed_lots = Counter(
            {
                lot_id: int(qty)
                for lot_id, qty in session.exec(
                    select(Reservation.lot_id, func.sum(Reservation.qty))
                    .where(col(Reservation.order_no).in_(released), Reservation.state == ReservationState.LOCKED)
                    .group_by(col(Reservation.lot_id))
                ).all()
            }
        )
    counts = in_threads(inventory.release_stock, [OrderRef(order_no=n) for n in released * 2])
    assert sum(counts) == len(released) == 50  # one reservation each, released once
    assert in_threads(inventory.release_stock, [OrderRef(order_no=n) for n in released]) == [0] * 50
    after_release = assert_ledger_balanced(engine, sku, expected_locked=50)
    assert Counter(before) - Counter(after_release) == freed_lots  # exactly their units, from their lots
    still_locked = locked_by_order(engine, sku)
    assert sorted(still_locked) == sorted(kept) and set(still_locked.values()) == {1}

    second = [request(order_no("W2", i), [(sku, 1)]) for i in range(120)]
    second_outcomes = in_threads(inventory.allocate_stock, second)
    second_winners = [o for o in second_outcomes if o.allocations]
    assert len(second_winners) == 50
    assert all(o.shortages == {sku: 1} for o in second_outcomes if not o.allocations)
    assert_all_or_nothing(engine, second, second_outcomes)
    taken = Counter(a.lot_id for o in second_winners for a in o.allocations)
    assert taken == freed_lots  # the second wave took exactly the freed units, lot by lot
    assert_ledger_balanced(engine, sku, expected_locked=100)
    assert locked_by_order(engine, sku).keys() == set(kept) | {
        req.order_no for req, o in zip(second, second_outcomes, strict=True) if o.allocations
    }


def test_concurrent_duplicates_of_each_order_reserve_once(engine: Engine, inventory: InventoryActivities) -> None:
    """A retried lock can overlap the attempt it replaces (start-to-close timeout while the first still runs).

    Each order asks for exactly one lot's worth, so a duplicate that does not see its twin's rows would not
    collide on the reservation key: it would plan the next lot and hold the order's quantity twice.
    """
    sku = new_sku(engine, [("WH-SH", 5)] * 30 + [("WH-BJ", 5)] * 10)  # 200 units in lots of 5
    orders = [request(order_no("DUP", i), [(sku, 5)]) for i in range(20)]
    calls = [req for req in orders for _ in range(8)]
    random.Random(3).shuffle(calls)

    outcomes = in_threads(inventory.allocate_stock, calls)

    answers: dict[str, set[tuple[tuple[int, str, int, int], ...]]] = {}
    for req, outcome in zip(calls, outcomes, strict=True):
        answers.setdefault(req.order_no, set()).add(
            tuple(sorted((a.line_no, a.sku, a.lot_id, a.qty) for a in outcome.allocations))
        )
    held = locked_by_order(engine, sku)
    twice = {number: qty for number, qty in held.items() if qty != 5}
    assert not twice, f"{len(twice)} of 20 orders hold other than the 5 units they asked for: {twice}"
    assert held.keys() == {req.order_no for req in orders}
    shortages = [o.shortages for o in outcomes if o.shortages]
    assert not shortages, f"{len(shortages)} duplicates were told the stock is short: {shortages[:3]}"
    assert all(len(seen) == 1 for seen in answers.values()), "duplicates of one order got different answers"
    assert_all_or_nothing(engine, orders, [outcomes[calls.index(req)] for req in orders])
    assert_ledger_balanced(engine, sku, expected_locked=100)


def test_no_stock_at_all_every_order_short_and_one_requisition(engine: Engine, inventory: InventoryActivities) -> None:
    """A SKU with no lots: nothing to lock, so only the requisition's unique key orders the writers."""
    sku = new_sku(engine, [])
    quantities = [random.Random(11).randint(1, 7) for _ in range(64)]
    requests = [request(order_no("NONE", i), [(sku, qty)]) for i, qty in enumerate(quantities)]

    outcomes = in_threads(inventory.allocate_stock, requests)

    assert [o.shortages for o in outcomes] == [{sku: qty} for qty in quantities]  # short by all of it, exactly
    assert all(not o.allocations for o in outcomes)
    assert_ledger_balanced(engine, sku, expected_locked=0)
    with Session(engine) as session:
        level = session.get(Product, sku).reorder_level  # type: ignore[union-attr]
        open_requests = session.exec(
            select(PurchaseRequisition).where(
                PurchaseRequisition.sku == sku, col(PurchaseRequisition.open_key).is_not(None)
            )
        ).all()
    # One open requisition, at the nearest warehouse, asking for a shortfall plus the reorder level.
    assert [r.warehouse for r in open_requests] == ["WH-SH"]
    assert level < open_requests[0].qty <= max(quantities) + level
