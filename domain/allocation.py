"""Stock allocation as a pure function: nearest warehouse first, FIFO lots inside it.

Plain data in, a plan or an exact shortfall out; no database. The inventory activity feeds it locked rows
and writes what it returns.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime


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


@dataclass(frozen=True)
class Allocation:
    line_no: int
    sku: str
    warehouse: str
    lot_id: int
    lot: str
    bin: str
    qty: int


@dataclass(frozen=True)
class AllocationPlan:
    allocations: tuple[Allocation, ...] = ()
    # sku -> units missing after every allowed warehouse was tried; empty when the order is covered.
    shortages: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.shortages


class OutOfStock(Exception):
    pass


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


def _fifo(lots: list[LotStock]) -> list[LotStock]:
    return sorted(lots, key=lambda lot: (lot.received_at, lot.lot, lot.lot_id))


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
        taken.append(Allocation(line.line_no, line.sku, lot.warehouse, lot.lot_id, lot.lot, lot.bin, qty))
    return taken, need


def allocate(
    lines: list[LineRequest], lots: list[LotStock], warehouse_rank: list[str], *, allow_split: bool
) -> AllocationPlan:
    """Plan the whole order or report the exact shortfall.

    1. The nearest single warehouse that covers every line wins (one parcel).
    2. Otherwise, when splitting is allowed, each line is filled nearest-first across warehouses.
    """
    by_warehouse: dict[str, list[LotStock]] = defaultdict(list)
    for lot in _fifo(lots):
        by_warehouse[lot.warehouse].append(lot)

    for code in warehouse_rank:
        remaining = {lot.lot_id: max(lot.available, 0) for lot in lots}
        plan: list[Allocation] = []
        covered = True
        for line in lines:
            taken, missing = _take(line, by_warehouse[code], remaining)
            plan.extend(taken)
            if missing:
                covered = False
                break
        if covered:
            return AllocationPlan(tuple(plan))

    if not allow_split:
        # Report what the best single warehouse lacks, so a backorder asks for the right quantity.
        return AllocationPlan((), _single_warehouse_shortfall(lines, by_warehouse, warehouse_rank))

    remaining = {lot.lot_id: max(lot.available, 0) for lot in lots}
    ranked_lots = [lot for code in warehouse_rank for lot in by_warehouse[code]]
    plan = []
    shortages: dict[str, int] = defaultdict(int)
    for line in lines:
        taken, missing = _take(line, ranked_lots, remaining)
        plan.extend(taken)
        if missing:
            shortages[line.sku] += missing
    if shortages:
        return AllocationPlan((), dict(shortages))
    return AllocationPlan(tuple(plan))


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
        remaining = {lot.lot_id: max(lot.available, 0) for lot in by_warehouse[code]}
        missing_by_sku: dict[str, int] = defaultdict(int)
        for line in lines:
            _, missing = _take(line, by_warehouse[code], remaining)
            if missing:
                missing_by_sku[line.sku] += missing
        if best is None or sum(missing_by_sku.values()) < sum(best.values()):
            best = dict(missing_by_sku)
    return best or {}
