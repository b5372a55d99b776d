"""Allocation strategies of issue 3: FEFO and expiry, fewest warehouses when splitting, replenishment maths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.allocation import LineRequest, LotStock, allocate
from domain.replenishment import Need, backorder_needs, reorder_needs
from models.allocation import Allocation

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def lot(lot_id: int, warehouse: str, available: int, *, days: int = 0, expires_in: int | None = None) -> LotStock:
    return LotStock(
        lot_id=lot_id,
        warehouse=warehouse,
        sku="A",
        lot=f"L{lot_id}",
        bin=f"B-{lot_id}",
        received_at=T0 + timedelta(days=days),
        available=available,
        expires_at=None if expires_in is None else T0 + timedelta(days=expires_in),
    )


def taken(allocations: tuple[Allocation, ...]) -> list[tuple[int, int]]:
    return [(a.lot_id, a.qty) for a in allocations]


def test_fifo_takes_the_oldest_lot_first_whatever_its_expiry() -> None:
    lots = [lot(1, "W1", 5, days=0, expires_in=300), lot(2, "W1", 5, days=10, expires_in=30)]
    plan = allocate([LineRequest(1, "A", 6)], lots, ["W1"], allow_split=True, lot_order="fifo", now=T0)
    assert taken(plan.allocations) == [(1, 5), (2, 1)]


def test_fefo_takes_the_soonest_expiry_first_and_undated_lots_last() -> None:
    lots = [
        lot(1, "W1", 5, days=0),  # no expiry: last
        lot(2, "W1", 5, days=5, expires_in=300),
        lot(3, "W1", 5, days=10, expires_in=30),
    ]
    plan = allocate([LineRequest(1, "A", 12)], lots, ["W1"], allow_split=True, lot_order="fefo", now=T0)
    assert taken(plan.allocations) == [(3, 5), (2, 5), (1, 2)]


def test_expired_lots_never_ship_and_count_as_short() -> None:
    lots = [lot(1, "W1", 5, expires_in=-1), lot(2, "W1", 3, expires_in=10)]
    plan = allocate([LineRequest(1, "A", 4)], lots, ["W1"], allow_split=True, lot_order="fefo", now=T0)
    assert plan.allocations == () and plan.shortages == {"A": 1}
    ok = allocate([LineRequest(1, "A", 3)], lots, ["W1"], allow_split=True, now=T0)
    assert taken(ok.allocations) == [(2, 3)]


def test_an_expiry_exactly_now_counts_as_expired() -> None:
    plan = allocate([LineRequest(1, "A", 1)], [lot(1, "W1", 5, expires_in=0)], ["W1"], allow_split=True, now=T0)
    assert plan.shortages == {"A": 1}


def test_split_uses_the_fewest_warehouses_not_the_nearest_greedy_fill() -> None:
    # Nearest-first greedy would take W1 (2) + W2 (2) + W3 (6) = three parcels; W1 + W3 or W2 + W3 need two.
    lots = [lot(1, "W1", 2), lot(2, "W2", 2), lot(3, "W3", 8)]
    plan = allocate([LineRequest(1, "A", 10)], lots, ["W1", "W2", "W3"], allow_split=True)
    assert {a.warehouse for a in plan.allocations} == {"W1", "W3"}  # the nearer pair among the two-warehouse ones
    assert taken(plan.allocations) == [(1, 2), (3, 8)]


def test_single_warehouse_refuses_to_split_and_reports_the_best_warehouse_shortfall() -> None:
    lots = [lot(1, "W1", 6), lot(2, "W2", 7)]
    plan = allocate([LineRequest(1, "A", 10)], lots, ["W1", "W2"], allow_split=False)
    assert plan.allocations == () and plan.shortages == {"A": 3}


def test_backorder_asks_the_nearest_warehouse_for_the_shortfall_plus_the_reorder_level() -> None:
    assert backorder_needs({"A": 4, "B": 0}, "W1", {"A": 50}) == [Need("A", "W1", 54, "backorder")]


def test_reorder_point_tops_up_to_the_level_only_below_it() -> None:
    needs = reorder_needs({("A", "W1"): 49, ("A", "W2"): 50, ("B", "W1"): 0}, {"A": 50, "B": 10})
    assert needs == [Need("A", "W1", 1, "reorder_point"), Need("B", "W1", 10, "reorder_point")]
