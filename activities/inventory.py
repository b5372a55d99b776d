"""Stock locking: the whole order's reservations commit together or not at all, and never twice.

Concurrency: on Postgres the candidate lots are locked `FOR UPDATE` in id order (a fixed order, so two
orders cannot deadlock) before anything is summed; on SQLite every transaction begins IMMEDIATE, which
serialises writers. Idempotency: each reservation's key is (order, line, lot); a retried call first finds
the reservations it already made, and a concurrent duplicate loses on the unique key and re-reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select, update
from temporalio import activity

from activities.base import DbActivities
from core.db import is_postgres
from domain.allocation import LineRequest, LotStock, allocate, rank_warehouses
from domain.replenishment import Need, backorder_needs, reorder_needs
from models.allocation import Allocation
from models.contracts import AllocateInput, AllocateOutcome, OrderRef
from models.tables import (
    Product,
    RegionDistance,
    Reservation,
    ReservationState,
    StockLot,
    Warehouse,
    utcnow,
)
from rules.automation import EventKind
from services.automation.events import record_event
from services.order_facts import record_first_allocation
from services.queries.availability import levels_of, lots_of
from services.replenishment import request_stock
from workflows.steps import InventorySteps


def reservation_key(order_no: str, line_no: int, lot_id: int) -> str:
    return f"{order_no}:{line_no}:{lot_id}"


class InventoryActivities(DbActivities, InventorySteps):
    @activity.defn
    def allocate_stock(self, inp: AllocateInput) -> AllocateOutcome:
        for _ in range(5):
            try:
                return self._allocate_once(inp)
            except IntegrityError:
                continue  # a duplicate of this very call committed first: the next pass returns its rows
        raise RuntimeError(f"could not settle reservations of {inp.order_no}")

    def _allocate_once(self, inp: AllocateInput) -> AllocateOutcome:
        with self.transaction(inp.order_no) as session:
            existing = self._existing(session, inp.order_no)
            if existing:
                return AllocateOutcome(allocations=existing)
            if self._released(session, inp.order_no):
                # The order was cancelled and its stock given back: a stale attempt must not lock again.
                return AllocateOutcome(allocations=[], shortages={})

            skus = sorted({sku for _, sku, _ in inp.lines})
            # Master data first: the less work done while holding lot locks, the more orders per second.
            warehouses = {w.code: w.region for w in session.exec(select(Warehouse))}
            distances = {(d.from_region, d.to_region): d.distance for d in session.exec(select(RegionDistance))}
            rank = rank_warehouses(inp.ship_to_region, warehouses, distances)
            levels = self._reorder_levels(session, skus)
            lots = lots_of(session, skus, lock=is_postgres(self.engine))
            if is_postgres(self.engine):
                # A duplicate of this very call may have committed while we waited for the locks: look again
                # (READ COMMITTED: this statement sees it) and return its rows instead of planning anew.
                existing = self._existing(session, inp.order_no)
                if existing:
                    return AllocateOutcome(allocations=existing)
            now = utcnow()
            stock = [
                LotStock(
                    lot_id=level.lot.id or 0,
                    warehouse=level.lot.warehouse,
                    sku=level.lot.sku,
                    lot=level.lot.lot,
                    bin=level.lot.bin,
                    received_at=level.lot.received_at,
                    available=level.available,
                    expires_at=level.lot.expires_at,
                )
                for level in levels_of(session, lots, now)
            ]
            requests = [LineRequest(line_no, sku, qty) for line_no, sku, qty in inp.lines]
            plan = allocate(requests, stock, rank, allow_split=inp.allow_split, lot_order=inp.lot_order, now=now)
            if not plan.complete:
                self.log.info("short", shortages=plan.shortages)
                self._request(session, backorder_needs(plan.shortages, rank[0], levels), inp.order_no)
                record_first_allocation(session, inp.order_no, plan.shortages)
                return AllocateOutcome(allocations=[], shortages=plan.shortages)
            for alloc in plan.allocations:
                session.add(
                    Reservation(
                        key=reservation_key(inp.order_no, alloc.line_no, alloc.lot_id),
                        order_no=inp.order_no,
                        line_no=alloc.line_no,
                        sku=alloc.sku,
                        warehouse=alloc.warehouse,
                        lot_id=alloc.lot_id,
                        qty=alloc.qty,
                        created_at=now,
                        updated_at=now,
                    )
                )
            left: dict[tuple[str, str], int] = defaultdict(int)
            for lot_stock in stock:  # an expired lot's availability is never above 0
                left[(lot_stock.sku, lot_stock.warehouse)] += max(lot_stock.available, 0)
            for alloc in plan.allocations:
                left[(alloc.sku, alloc.warehouse)] -= alloc.qty
            touched = {(alloc.sku, alloc.warehouse) for alloc in plan.allocations}
            self._announce_levels(session, inp.order_no, left, plan.allocations, levels, now)
            self._request(session, reorder_needs({k: v for k, v in left.items() if k in touched}, levels), inp.order_no)
            record_first_allocation(session, inp.order_no, {})
            session.flush()
            result = list(plan.allocations)
        self.log.info("locked", reservations=len(result))
        return AllocateOutcome(allocations=result)

    @staticmethod
    def _announce_levels(
        session: Session,
        order_no: str,
        left: Mapping[tuple[str, str], int],
        allocations: Sequence[Allocation],
        levels: Mapping[str, int],
        now: datetime,
    ) -> None:
        """A stock-level event per (sku, warehouse) this order took stock from: available before and after (the
        automations' stock_crossed trigger decides whether a level was crossed)."""
        taken: dict[tuple[str, str], int] = defaultdict(int)
        for alloc in allocations:
            taken[(alloc.sku, alloc.warehouse)] += alloc.qty
        for (sku, warehouse), qty in sorted(taken.items()):
            after = left[(sku, warehouse)]
            data = {
                "sku": sku,
                "warehouse": warehouse,
                "available_before": after + qty,
                "available": after,
                "reorder_level": levels.get(sku, 0),
            }
            key = f"stock:{order_no}:{sku}:{warehouse}"
            record_event(session, EventKind.STOCK_LEVEL, f"{sku}@{warehouse}", key, data, now)

    @staticmethod
    def _released(session: Session, order_no: str) -> bool:
        return (
            session.exec(
                select(Reservation.id).where(
                    Reservation.order_no == order_no, Reservation.state == ReservationState.RELEASED
                )
            ).first()
            is not None
        )

    @staticmethod
    def _reorder_levels(session: Session, skus: list[str]) -> dict[str, int]:
        rows = session.exec(select(Product.sku, Product.reorder_level).where(col(Product.sku).in_(skus))).all()
        return dict(rows)

    def _request(self, session: Session, needs: list[Need], order_no: str) -> None:
        for requisition in request_stock(session, needs, order_no=order_no, lock=is_postgres(self.engine)):
            self.log.info("requisition", sku=requisition.sku, warehouse=requisition.warehouse, qty=requisition.qty)

    @staticmethod
    def _existing(session: Session, order_no: str) -> list[Allocation]:
        rows = session.exec(
            select(Reservation, StockLot)
            .join(StockLot, col(StockLot.id) == col(Reservation.lot_id))
            .where(Reservation.order_no == order_no, Reservation.state != ReservationState.RELEASED)
            .order_by(col(Reservation.line_no), col(Reservation.id))
        ).all()
        return [
            Allocation(
                line_no=res.line_no,
                sku=res.sku,
                warehouse=res.warehouse,
                lot_id=res.lot_id,
                lot=lot.lot,
                bin=lot.bin,
                qty=res.qty,
            )
            for res, lot in rows
        ]

    @activity.defn
    def release_stock(self, inp: OrderRef) -> int:
        """Compensation: give back every still-locked unit of the order. Idempotent."""
        with self.transaction(inp.order_no) as session:
            result = session.exec(
                update(Reservation)
                .where(col(Reservation.order_no) == inp.order_no, col(Reservation.state) == ReservationState.LOCKED)
                .values(state=ReservationState.RELEASED, updated_at=utcnow())
            )
            released = int(result.rowcount or 0)
        self.log.info("released", reservations=released)
        return released
