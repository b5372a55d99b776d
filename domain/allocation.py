"""Stock allocation as a pure function: nearest warehouse first, FIFO (or FEFO) lots inside it.

Plain data in, a plan or an exact shortfall out; no database. The inventory activity feeds it locked rows
and writes what it returns. Strategies:
- `single_warehouse`: the nearest warehouse that covers every line, or nothing (one parcel);
- `split`: the fewest warehouses that cover the order (nearest first among equals), filled nearest-first;
- lots in `fifo` order (oldest received first) or `fefo` (soonest expiry first); expired lots never ship.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

from models.allocation import Allocation, LotOrder

# Above this many warehouses the fewest-warehouses search stops enumerating combinations.
MAX_COMBINATION_SEARCH = 12


@dataclass(frozen=True)
class LineRequest:
    line_no: int
    sku: str
    qty: int


@dataclass(frozen=True)
class LotStock:
    lot_id: int
    warehouse: str
    sku: str
    lot: str
    bin: str
    received_at: datetime
    available: int
    expires_at: datetime | None = None


@dataclass(frozen=True)
class AllocationPlan:
    allocations: tuple[Allocation, ...] = ()
    # sku -> units missing after every allowed warehouse was tried; empty when the order is covered.
    shortages: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.shortages


def rank_warehouses(
    ship_to_region: str, warehouses: dict[str, str], distances: dict[tuple[str, str], int]
) -> list[str]:
    """Warehouse codes nearest first. `warehouses` maps code -> region; unknown distances sort last."""
    far = 1_000_000

    def distance(code: str) -> tuple[int, str]:
        region = warehouses[code]
        if region == ship_to_region:
            return (0, code)
        return (distances.get((region, ship_to_region), far), code)

    return sorted(warehouses, key=distance)


def _ordered(lots: Iterable[LotStock], lot_order: LotOrder) -> list[LotStock]:
    if lot_order == "fefo":  # lots without an expiry go after every lot that has one
        return sorted(lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or lot.received_at,
                                             lot.received_at, lot.lot, lot.lot_id))  # fmt: skip
    return sorted(lots, key=lambda lot: (lot.received_at, lot.lot, lot.lot_id))


def _usable(lots: Iterable[LotStock], now: datetime | None) -> list[LotStock]:
    """Lots that may ship: something available and, when `now` is given, not expired."""
    return [
        lot for lot in lots if lot.available > 0 and (now is None or lot.expires_at is None or lot.expires_at > now)
    ]


def _take(line: LineRequest, ordered_lots: list[LotStock], remaining: dict[int, int]) -> tuple[list[Allocation], int]:
    """Take up to line.qty from lots in the given order; returns allocations and what is still missing."""
    need = line.qty
    taken: list[Allocation] = []
    for lot in ordered_lots:
        if need == 0:
            break
        if lot.sku != line.sku:
            continue
        qty = min(need, remaining[lot.lot_id])
        if qty <= 0:
            continue
        remaining[lot.lot_id] -= qty
        need -= qty
        taken.append(
            Allocation(
                line_no=line.line_no,
                sku=line.sku,
                warehouse=lot.warehouse,
                lot_id=lot.lot_id,
                lot=lot.lot,
                bin=lot.bin,
                qty=qty,
            )  # fmt: skip
        )
    return taken, need


def allocate(
    lines: list[LineRequest],
    lots: list[LotStock],
    warehouse_rank: list[str],
    *,
    allow_split: bool,
    lot_order: LotOrder = "fifo",
    now: datetime | None = None,
) -> AllocationPlan:
    """Plan the whole order or report the exact shortfall (nothing is planned when anything is short)."""
    usable = _ordered(_usable(lots, now), lot_order)
    by_warehouse: dict[str, list[LotStock]] = defaultdict(list)
    for lot in usable:
        by_warehouse[lot.warehouse].append(lot)

    for code in warehouse_rank:
        plan = _fill(lines, [by_warehouse[code]])
        if plan is not None:
            return AllocationPlan(tuple(plan))

    if not allow_split:
        # Report what the best single warehouse lacks, so a backorder asks for the right quantity.
        return AllocationPlan((), _single_warehouse_shortfall(lines, by_warehouse, warehouse_rank))

    for group in _warehouse_groups(lines, by_warehouse, warehouse_rank):
        plan = _fill(lines, [by_warehouse[code] for code in group])
        if plan is not None:
            return AllocationPlan(tuple(plan))

    demand: dict[str, int] = defaultdict(int)
    for line in lines:
        demand[line.sku] += line.qty
    supply: dict[str, int] = defaultdict(int)
    for lot in usable:
        if lot.warehouse in warehouse_rank:
            supply[lot.sku] += lot.available
    return AllocationPlan((), {sku: qty - supply[sku] for sku, qty in demand.items() if qty > supply[sku]})


def _fill(lines: list[LineRequest], warehouses: list[list[LotStock]]) -> list[Allocation] | None:
    """Fill every line from these warehouses' lots, in the order given; None when any line falls short."""
    ordered = [lot for lots in warehouses for lot in lots]
    remaining = {lot.lot_id: lot.available for lot in ordered}
    plan: list[Allocation] = []
    for line in lines:
        taken, missing = _take(line, ordered, remaining)
        if missing:
            return None
        plan.extend(taken)
    return plan


def _warehouse_groups(
    lines: list[LineRequest], by_warehouse: dict[str, list[LotStock]], warehouse_rank: list[str]
) -> Iterable[tuple[str, ...]]:
    """Groups of 2, 3, ... warehouses whose stock covers the demand: fewest first, nearest first among equals."""
    demand: dict[str, int] = defaultdict(int)
    for line in lines:
        demand[line.sku] += line.qty
    stock = {
        code: {sku: sum(lot.available for lot in by_warehouse[code] if lot.sku == sku) for sku in demand}
        for code in warehouse_rank
    }
    if len(warehouse_rank) > MAX_COMBINATION_SEARCH:
        yield tuple(warehouse_rank)  # too many to enumerate: nearest-first across all of them
        return
    position = {code: index for index, code in enumerate(warehouse_rank)}
    for size in range(2, len(warehouse_rank) + 1):
        groups = sorted(combinations(warehouse_rank, size), key=lambda g: sorted(position[c] for c in g))
        for group in groups:
            if all(sum(stock[code][sku] for code in group) >= qty for sku, qty in demand.items()):
                yield group


def _single_warehouse_shortfall(
    lines: list[LineRequest], by_warehouse: dict[str, list[LotStock]], warehouse_rank: list[str]
) -> dict[str, int]:
    if not warehouse_rank:
        totals: dict[str, int] = defaultdict(int)
        for line in lines:
            totals[line.sku] += line.qty
        return dict(totals)
    best: dict[str, int] | None = None
    for code in warehouse_rank:
        remaining = {lot.lot_id: lot.available for lot in by_warehouse[code]}
        missing_by_sku: dict[str, int] = defaultdict(int)
        for line in lines:
            _, missing = _take(line, by_warehouse[code], remaining)
            if missing:
                missing_by_sku[line.sku] += missing
        if best is None or sum(missing_by_sku.values()) < sum(best.values()):
            best = dict(missing_by_sku)
    return best or {}
