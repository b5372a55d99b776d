"""domain.allocation: nearest warehouse first, FIFO lots inside it, split or exact shortfall.

Example tests pin the policy; property tests check the invariants against an independent computation.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.allocation import AllocationPlan, LineRequest, LotStock, allocate, rank_warehouses
from models.allocation import Allocation

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def lot(
    lot_id: int,
    warehouse: str,
    sku: str,
    available: int,
    *,
    day: int = 0,
    name: str | None = None,
    bin_code: str | None = None,
) -> LotStock:
    return LotStock(
        lot_id=lot_id,
        warehouse=warehouse,
        sku=sku,
        lot=name or f"L{lot_id}",
        bin=bin_code or f"A-{lot_id}",
        received_at=T0 + timedelta(days=day),
        available=available,
    )


def taken(plan: AllocationPlan) -> list[tuple[int, str, int, int]]:
    """(line_no, warehouse, lot_id, qty) in plan order."""
    return [(a.line_no, a.warehouse, a.lot_id, a.qty) for a in plan.allocations]


# --- rank_warehouses -----------------------------------------------------------------------------


class TestRankWarehouses:
    WAREHOUSES = {"WH-SH": "east", "WH-BJ": "north", "WH-GZ": "south"}
    DISTANCES = {("north", "east"): 1200, ("south", "east"): 1400, ("east", "south"): 1400, ("north", "south"): 2100}

    def test_same_region_first_then_by_distance(self) -> None:
        assert rank_warehouses("east", self.WAREHOUSES, self.DISTANCES) == ["WH-SH", "WH-BJ", "WH-GZ"]
        assert rank_warehouses("south", self.WAREHOUSES, self.DISTANCES) == ["WH-GZ", "WH-SH", "WH-BJ"]

    def test_distance_is_read_from_warehouse_region_to_ship_to_region(self) -> None:
        # Only (warehouse region, ship-to region) counts; make the reverse direction misleading.
        distances = {("north", "west"): 10, ("west", "south"): 1, ("south", "west"): 500}
        ranked = rank_warehouses("west", {"N": "north", "S": "south"}, distances)
        assert ranked == ["N", "S"]

    def test_unknown_distance_sorts_last_and_ties_break_by_code(self) -> None:
        warehouses = {"Z-KNOWN": "north", "B-UNKNOWN": "mars", "A-UNKNOWN": "venus", "C-SAME": "east"}
        ranked = rank_warehouses("east", warehouses, {("north", "east"): 5000})
        assert ranked == ["C-SAME", "Z-KNOWN", "A-UNKNOWN", "B-UNKNOWN"]

    def test_equal_distances_break_ties_by_code(self) -> None:
        warehouses = {"WH-2": "north", "WH-1": "south"}
        distances = {("north", "east"): 100, ("south", "east"): 100}
        assert rank_warehouses("east", warehouses, distances) == ["WH-1", "WH-2"]

    def test_same_region_is_distance_zero_without_a_row(self) -> None:
        # B-LOCAL has no distance row but shares the ship-to region; it beats a 1 km neighbour with a lower code.
        warehouses = {"A-OTHER": "north", "B-LOCAL": "east"}
        assert rank_warehouses("east", warehouses, {("north", "east"): 1})[0] == "B-LOCAL"

    def test_no_warehouses(self) -> None:
        assert rank_warehouses("east", {}, {}) == []


# --- allocate: examples --------------------------------------------------------------------------


class TestNearestWarehouse:
    def test_nearest_warehouse_wins_when_it_covers_the_order(self) -> None:
        lots = [lot(1, "FAR", "A", 100), lot(2, "NEAR", "A", 10)]
        plan = allocate([LineRequest(1, "A", 10)], lots, ["NEAR", "FAR"], allow_split=True)
        assert plan.complete
        assert taken(plan) == [(1, "NEAR", 2, 10)]

    def test_rank_order_not_lot_order_decides(self) -> None:
        lots = [lot(1, "NEAR", "A", 10), lot(2, "FAR", "A", 100)]
        plan = allocate([LineRequest(1, "A", 5)], lots, ["FAR", "NEAR"], allow_split=True)
        assert taken(plan) == [(1, "FAR", 2, 5)]

    def test_whole_order_from_the_nearest_warehouse_covering_every_line(self) -> None:
        # NEAR has A but not B: the single parcel comes from MID, which has both, even with splitting allowed.
        lots = [lot(1, "NEAR", "A", 50), lot(2, "MID", "A", 5), lot(3, "MID", "B", 5), lot(4, "FAR", "B", 50)]
        lines = [LineRequest(1, "A", 5), LineRequest(2, "B", 5)]
        plan = allocate(lines, lots, ["NEAR", "MID", "FAR"], allow_split=True)
        assert plan.complete
        assert {a.warehouse for a in plan.allocations} == {"MID"}
        assert taken(plan) == [(1, "MID", 2, 5), (2, "MID", 3, 5)]

    def test_allocation_carries_lot_and_bin(self) -> None:
        lots = [lot(7, "WH", "A", 3, name="L2609-001", bin_code="B-02-11")]
        plan = allocate([LineRequest(4, "A", 3)], lots, ["WH"], allow_split=False)
        expected = Allocation(line_no=4, sku="A", warehouse="WH", lot_id=7, lot="L2609-001", bin="B-02-11", qty=3)
        assert plan.allocations == (expected,)
        assert plan.shortages == {}

    def test_lots_of_unranked_warehouses_are_not_used(self) -> None:
        lots = [lot(1, "GHOST", "A", 100), lot(2, "WH", "A", 2)]
        plan = allocate([LineRequest(1, "A", 5)], lots, ["WH"], allow_split=True)
        assert not plan.complete
        assert plan.shortages == {"A": 3}


class TestFifo:
    def test_oldest_lot_first_within_a_warehouse(self) -> None:
        lots = [lot(1, "WH", "A", 10, day=5), lot(2, "WH", "A", 10, day=1), lot(3, "WH", "A", 10, day=3)]
        plan = allocate([LineRequest(1, "A", 15)], lots, ["WH"], allow_split=False)
        assert taken(plan) == [(1, "WH", 2, 10), (1, "WH", 3, 5)]

    def test_fifo_is_by_received_at_not_lot_id_or_name(self) -> None:
        lots = [lot(1, "WH", "A", 4, day=9, name="AAA"), lot(9, "WH", "A", 4, day=0, name="ZZZ")]
        plan = allocate([LineRequest(1, "A", 4)], lots, ["WH"], allow_split=False)
        assert taken(plan) == [(1, "WH", 9, 4)]

    def test_same_received_at_falls_back_to_lot_name(self) -> None:
        lots = [lot(1, "WH", "A", 4, name="L-B"), lot(2, "WH", "A", 4, name="L-A")]
        plan = allocate([LineRequest(1, "A", 4)], lots, ["WH"], allow_split=False)
        assert taken(plan) == [(1, "WH", 2, 4)]

    def test_fifo_in_the_far_warehouse_when_it_is_the_one_chosen(self) -> None:
        lots = [lot(1, "NEAR", "A", 1, day=0), lot(2, "FAR", "A", 5, day=7), lot(3, "FAR", "A", 5, day=2)]
        plan = allocate([LineRequest(1, "A", 6)], lots, ["NEAR", "FAR"], allow_split=False)
        assert taken(plan) == [(1, "FAR", 3, 5), (1, "FAR", 2, 1)]


class TestSplit:
    def test_split_nearest_first(self) -> None:
        lots = [lot(1, "FAR", "A", 5), lot(2, "NEAR", "A", 4), lot(3, "MID", "A", 3)]
        plan = allocate([LineRequest(1, "A", 10)], lots, ["NEAR", "MID", "FAR"], allow_split=True)
        assert plan.complete
        assert taken(plan) == [(1, "NEAR", 2, 4), (1, "MID", 3, 3), (1, "FAR", 1, 3)]

    def test_split_takes_fifo_inside_each_warehouse(self) -> None:
        lots = [
            lot(1, "NEAR", "A", 2, day=4),
            lot(2, "NEAR", "A", 2, day=1),
            lot(3, "FAR", "A", 3, day=9),
            lot(4, "FAR", "A", 3, day=0),
        ]
        plan = allocate([LineRequest(1, "A", 7)], lots, ["NEAR", "FAR"], allow_split=True)
        assert taken(plan) == [(1, "NEAR", 2, 2), (1, "NEAR", 1, 2), (1, "FAR", 4, 3)]

    def test_split_short_reports_exact_total_shortage_and_no_allocations(self) -> None:
        lots = [lot(1, "NEAR", "A", 4), lot(2, "FAR", "A", 3), lot(3, "FAR", "B", 1)]
        lines = [LineRequest(1, "A", 10), LineRequest(2, "B", 1), LineRequest(3, "C", 2)]
        plan = allocate(lines, lots, ["NEAR", "FAR"], allow_split=True)
        assert not plan.complete
        assert plan.allocations == ()
        assert plan.shortages == {"A": 3, "C": 2}

    def test_no_split_when_not_allowed_even_if_the_sum_would_cover(self) -> None:
        lots = [lot(1, "NEAR", "A", 6), lot(2, "FAR", "A", 6)]
        plan = allocate([LineRequest(1, "A", 10)], lots, ["NEAR", "FAR"], allow_split=False)
        assert not plan.complete
        assert plan.allocations == ()
        assert plan.shortages == {"A": 4}


class TestNoSplitShortfall:
    def test_shortfall_is_that_of_the_best_single_warehouse(self) -> None:
        # NEAR misses 8 A; FAR misses 1 A + 2 B = 3 in total: FAR is the best single warehouse.
        lots = [lot(1, "NEAR", "A", 2), lot(2, "NEAR", "B", 10), lot(3, "FAR", "A", 9), lot(4, "FAR", "B", 8)]
        lines = [LineRequest(1, "A", 10), LineRequest(2, "B", 10)]
        plan = allocate(lines, lots, ["NEAR", "FAR"], allow_split=False)
        assert plan.allocations == ()
        assert plan.shortages == {"A": 1, "B": 2}

    def test_tie_goes_to_the_nearest_warehouse(self) -> None:
        lots = [lot(1, "NEAR", "A", 7), lot(2, "FAR", "B", 7)]
        lines = [LineRequest(1, "A", 10), LineRequest(2, "B", 10)]
        plan = allocate(lines, lots, ["NEAR", "FAR"], allow_split=False)
        assert plan.shortages == {"A": 3, "B": 10}
        plan = allocate(lines, lots, ["FAR", "NEAR"], allow_split=False)
        assert plan.shortages == {"A": 10, "B": 3}

    def test_no_warehouses_means_everything_is_short(self) -> None:
        lines = [LineRequest(1, "A", 2), LineRequest(2, "A", 3), LineRequest(3, "B", 1)]
        plan = allocate(lines, [lot(1, "WH", "A", 100)], [], allow_split=False)
        assert plan.shortages == {"A": 5, "B": 1}
        plan = allocate(lines, [lot(1, "WH", "A", 100)], [], allow_split=True)
        assert plan.shortages == {"A": 5, "B": 1}

    def test_only_positive_shortages_are_reported(self) -> None:
        lots = [lot(1, "WH", "A", 10), lot(2, "WH", "B", 1)]
        plan = allocate([LineRequest(1, "A", 5), LineRequest(2, "B", 3)], lots, ["WH"], allow_split=False)
        assert plan.shortages == {"B": 2}


class TestSameSkuOnSeveralLines:
    def test_second_line_continues_where_the_first_stopped(self) -> None:
        lots = [lot(1, "WH", "A", 5, day=0), lot(2, "WH", "A", 5, day=1)]
        lines = [LineRequest(1, "A", 3), LineRequest(2, "A", 4)]
        plan = allocate(lines, lots, ["WH"], allow_split=False)
        assert taken(plan) == [(1, "WH", 1, 3), (2, "WH", 1, 2), (2, "WH", 2, 2)]

    def test_lines_together_exceeding_a_warehouse_are_short_not_double_counted(self) -> None:
        lots = [lot(1, "WH", "A", 5)]
        lines = [LineRequest(1, "A", 4), LineRequest(2, "A", 4)]
        plan = allocate(lines, lots, ["WH"], allow_split=False)
        assert plan.shortages == {"A": 3}
        assert allocate(lines, lots, ["WH"], allow_split=True).shortages == {"A": 3}

    def test_same_sku_lines_split_across_warehouses(self) -> None:
        lots = [lot(1, "NEAR", "A", 5), lot(2, "FAR", "A", 5)]
        lines = [LineRequest(1, "A", 4), LineRequest(2, "A", 4)]
        plan = allocate(lines, lots, ["NEAR", "FAR"], allow_split=True)
        assert taken(plan) == [(1, "NEAR", 1, 4), (2, "NEAR", 1, 1), (2, "FAR", 2, 3)]


class TestUnusableLots:
    @pytest.mark.parametrize("available", [0, -1, -50])
    def test_zero_or_negative_available_is_ignored(self, available: int) -> None:
        lots = [lot(1, "WH", "A", available, day=0), lot(2, "WH", "A", 5, day=1)]
        plan = allocate([LineRequest(1, "A", 5)], lots, ["WH"], allow_split=False)
        assert taken(plan) == [(1, "WH", 2, 5)]

    def test_negative_lot_does_not_reduce_what_others_offer(self) -> None:
        lots = [lot(1, "NEAR", "A", -20), lot(2, "NEAR", "A", 3), lot(3, "FAR", "A", 4)]
        plan = allocate([LineRequest(1, "A", 9)], lots, ["NEAR", "FAR"], allow_split=True)
        assert plan.shortages == {"A": 2}
        plan = allocate([LineRequest(1, "A", 7)], lots, ["NEAR", "FAR"], allow_split=True)
        assert taken(plan) == [(1, "NEAR", 2, 3), (1, "FAR", 3, 4)]

    def test_other_skus_in_the_same_warehouse_are_not_taken(self) -> None:
        lots = [lot(1, "WH", "B", 100), lot(2, "WH", "A", 1)]
        plan = allocate([LineRequest(1, "A", 2)], lots, ["WH"], allow_split=True)
        assert plan.shortages == {"A": 1}

    def test_empty_order_is_complete_with_nothing_to_take(self) -> None:
        plan = allocate([], [lot(1, "WH", "A", 5)], ["WH"], allow_split=False)
        assert plan.complete
        assert plan.allocations == ()


# --- allocate: properties ------------------------------------------------------------------------

WAREHOUSE_CODES = ["W1", "W2", "W3"]
SKUS = ["A", "B", "C"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[LineRequest], list[LotStock], list[str]]:
    lot_specs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(WAREHOUSE_CODES),
                st.sampled_from(SKUS),
                st.integers(-3, 12),  # available, sometimes zero or negative
                st.integers(0, 4),  # received day: duplicates exercise the tie-breakers
                st.sampled_from(["L1", "L2", "L3"]),
            ),
            max_size=12,
        )
    )
    lots = [
        LotStock(i + 1, wh, sku, name, f"B-{i}", T0 + timedelta(days=day), available)
        for i, (wh, sku, available, day, name) in enumerate(lot_specs)
    ]
    line_specs = draw(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 25)), min_size=1, max_size=5))
    lines = [LineRequest(i + 1, sku, qty) for i, (sku, qty) in enumerate(line_specs)]
    rank = draw(st.lists(st.sampled_from(WAREHOUSE_CODES), unique=True, max_size=3))
    return lines, lots, rank


def demand_by_sku(lines: list[LineRequest]) -> Counter[str]:
    demand: Counter[str] = Counter()
    for line in lines:
        demand[line.sku] += line.qty
    return demand


def supply_by_sku(lots: list[LotStock], warehouses: list[str]) -> Counter[str]:
    supply: Counter[str] = Counter()
    for item in lots:
        if item.warehouse in warehouses:
            supply[item.sku] += max(item.available, 0)
    return supply


def missing(demand: Counter[str], supply: Counter[str]) -> dict[str, int]:
    return {sku: qty - supply[sku] for sku, qty in demand.items() if qty > supply[sku]}


def expected_no_split_shortages(lines: list[LineRequest], lots: list[LotStock], rank: list[str]) -> dict[str, int]:
    demand = demand_by_sku(lines)
    if not rank:
        return dict(demand)
    per_warehouse = [missing(demand, supply_by_sku(lots, [code])) for code in rank]
    # The best single warehouse lacks the fewest units; on a tie the nearer one (min keeps the first).
    return min(per_warehouse, key=lambda short: sum(short.values()))


def check_invariants(plan: AllocationPlan, lines: list[LineRequest], lots: list[LotStock], rank: list[str]) -> None:
    by_id = {item.lot_id: item for item in lots}
    used: Counter[int] = Counter()
    for alloc in plan.allocations:
        source = by_id[alloc.lot_id]
        # (b) no negative (or empty) quantities, and the allocation describes the lot it came from
        assert alloc.qty > 0
        assert (alloc.warehouse, alloc.sku, alloc.lot, alloc.bin) == (
            source.warehouse,
            source.sku,
            source.lot,
            source.bin,
        )
        assert alloc.warehouse in rank
        used[alloc.lot_id] += alloc.qty
    # (a) never more than a lot has
    for lot_id, qty in used.items():
        assert qty <= by_id[lot_id].available
    assert all(qty > 0 for qty in plan.shortages.values())
    if plan.complete:
        # (c) every line exactly covered, by lots of its own SKU
        per_line: Counter[int] = Counter()
        for alloc in plan.allocations:
            line = next(line for line in lines if line.line_no == alloc.line_no)
            assert alloc.sku == line.sku
            per_line[alloc.line_no] += alloc.qty
        assert per_line == Counter({line.line_no: line.qty for line in lines})
    else:
        # (d) all or nothing
        assert plan.allocations == ()


def check_drained_before_used(plan: AllocationPlan, lots: list[LotStock], order: list[str]) -> None:
    """For each SKU, a lot is only touched once every lot before it (warehouse order, then FIFO) is empty."""
    used: Counter[int] = Counter()
    for alloc in plan.allocations:
        used[alloc.lot_id] += alloc.qty
    sequence: dict[str, list[LotStock]] = defaultdict(list)
    for code in order:
        fifo = sorted((item for item in lots if item.warehouse == code), key=lambda x: (x.received_at, x.lot, x.lot_id))
        for item in fifo:
            sequence[item.sku].append(item)
    for chain in sequence.values():
        touched = [i for i, item in enumerate(chain) if used[item.lot_id]]
        if touched:
            for item in chain[: touched[-1]]:
                assert used[item.lot_id] == max(item.available, 0), f"lot {item.lot_id} skipped before a later one"


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_split_properties(scenario: tuple[list[LineRequest], list[LotStock], list[str]]) -> None:
    lines, lots, rank = scenario
    plan = allocate(lines, lots, rank, allow_split=True)
    check_invariants(plan, lines, lots, rank)
    # (d) the exact shortfall: total demanded minus total available per SKU, computed independently
    expected = missing(demand_by_sku(lines), supply_by_sku(lots, rank))
    assert plan.shortages == expected
    assert plan.complete == (not expected)
    if plan.complete:
        covering = [code for code in rank if not missing(demand_by_sku(lines), supply_by_sku(lots, [code]))]
        if covering:  # a single warehouse covers: the nearest such one ships everything
            assert {a.warehouse for a in plan.allocations} == {covering[0]}
            check_drained_before_used(plan, lots, [covering[0]])
        else:  # the fewest warehouses that cover, nearest first among groups of that size
            group = fewest_covering_group(lines, lots, rank)
            assert {a.warehouse for a in plan.allocations} == set(group)
            check_drained_before_used(plan, lots, list(group))


def fewest_covering_group(lines: list[LineRequest], lots: list[LotStock], rank: list[str]) -> tuple[str, ...]:
    """Independent of the code under test: smallest covering group, ties broken by sorted rank positions."""
    demand = demand_by_sku(lines)
    for size in range(1, len(rank) + 1):
        groups = sorted(itertools.combinations(rank, size), key=lambda g: sorted(rank.index(c) for c in g))
        for group in groups:
            if not missing(demand, supply_by_sku(lots, list(group))):
                return group
    raise AssertionError("no group covers, yet the plan is complete")


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios())
def test_no_split_properties(scenario: tuple[list[LineRequest], list[LotStock], list[str]]) -> None:
    lines, lots, rank = scenario
    plan = allocate(lines, lots, rank, allow_split=False)
    check_invariants(plan, lines, lots, rank)
    covering = [code for code in rank if not missing(demand_by_sku(lines), supply_by_sku(lots, [code]))]
    if covering:
        assert plan.complete
        assert {a.warehouse for a in plan.allocations} == {covering[0]}
        check_drained_before_used(plan, lots, [covering[0]])
    else:
        assert not plan.complete
        assert plan.shortages == expected_no_split_shortages(lines, lots, rank)


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), allow_split=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_deterministic(
    scenario: tuple[list[LineRequest], list[LotStock], list[str]], allow_split: bool, seed: int
) -> None:
    lines, lots, rank = scenario
    first = allocate(lines, lots, rank, allow_split=allow_split)
    assert allocate(list(lines), list(lots), list(rank), allow_split=allow_split) == first
    # The order rows come back from the database in does not matter either.
    shuffled = list(lots)
    random.Random(seed).shuffle(shuffled)
    assert allocate(lines, shuffled, rank, allow_split=allow_split) == first
