"""Stock locking: the whole order's reservations commit together or not at all, and never twice.

Concurrency: on Postgres the candidate lots are locked `FOR UPDATE` in id order (a fixed order, so two
orders cannot deadlock) before anything is summed; on SQLite every transaction begins IMMEDIATE, which
serialises writers. Idempotency: each reservation's key is (order, line, lot); a retried call first finds
the reservations it already made, and a concurrent duplicate loses on the unique key and re-reads.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select, update
from temporalio import activity

from activities.base import DbActivities
from core.db import is_postgres
from domain.allocation import LineRequest, LotStock, allocate, rank_warehouses
from models.contracts import AllocatedLot, AllocateInput, AllocateOutcome, OrderRef
from models.tables import (
    RegionDistance,
    Reservation,
    ReservationState,
    StockLot,
    Warehouse,
    utcnow,
)


def reservation_key(order_no: str, line_no: int, lot_id: int) -> str:
    return f"{order_no}:{line_no}:{lot_id}"


class InventoryActivities(DbActivities):
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

            skus = sorted({sku for _, sku, _ in inp.lines})
            lot_query = select(StockLot).where(col(StockLot.sku).in_(skus)).order_by(col(StockLot.id))
            if is_postgres(self.engine):
                lot_query = lot_query.with_for_update()
            lots = session.exec(lot_query).all()
            reserved = dict(
                session.exec(
                    select(Reservation.lot_id, func.sum(Reservation.qty))
                    .where(
                        col(Reservation.lot_id).in_([lot.id for lot in lots]),
                        Reservation.state == ReservationState.LOCKED,
                    )
                    .group_by(col(Reservation.lot_id))
                ).all()
            )
            stock = [
                LotStock(
                    lot_id=lot.id or 0,
                    warehouse=lot.warehouse,
                    sku=lot.sku,
                    lot=lot.lot,
                    bin=lot.bin,
                    received_at=lot.received_at,
                    available=lot.on_hand - int(reserved.get(lot.id or 0, 0)),
                )
                for lot in lots
            ]
            warehouses = {w.code: w.region for w in session.exec(select(Warehouse))}
            distances = {(d.from_region, d.to_region): d.distance for d in session.exec(select(RegionDistance))}
            rank = rank_warehouses(inp.ship_to_region, warehouses, distances)
            requests = [LineRequest(line_no, sku, qty) for line_no, sku, qty in inp.lines]
            plan = allocate(requests, stock, rank, allow_split=inp.allow_split)
            if not plan.complete:
                self.log.info("short", shortages=plan.shortages)
                return AllocateOutcome(allocations=[], shortages=plan.shortages)
            now = utcnow()
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
            session.flush()
            result = [AllocatedLot(**alloc.__dict__) for alloc in plan.allocations]
        self.log.info("locked", reservations=len(result))
        return AllocateOutcome(allocations=result)

    @staticmethod
    def _existing(session: Session, order_no: str) -> list[AllocatedLot]:
        rows = session.exec(
            select(Reservation, StockLot)
            .join(StockLot, col(StockLot.id) == col(Reservation.lot_id))
            .where(Reservation.order_no == order_no, Reservation.state != ReservationState.RELEASED)
            .order_by(col(Reservation.line_no), col(Reservation.id))
        ).all()
        return [
            AllocatedLot(
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
