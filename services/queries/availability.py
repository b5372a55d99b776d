"""Available stock, defined once: a lot's on-hand units minus its locked reservations, and nothing of an expired
lot is ever promised. Allocation (under its row locks), the inventory view and the product list all read it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func
from sqlmodel import Session, col, select

from models.tables import Reservation, ReservationState, StockLot


@dataclass(frozen=True)
class LotLevel:
    lot: StockLot
    reserved: int  # units of this lot locked for orders (not yet shipped, not released)
    expired: bool  # past its expiry: on hand, but never promised

    @property
    def available(self) -> int:
        """What may still be promised from this lot (negative when more is locked than an expired lot can give)."""
        return (0 if self.expired else self.lot.on_hand) - self.reserved


def is_expired(lot: StockLot, now: datetime) -> bool:
    return lot.expires_at is not None and lot.expires_at <= now


def lots_of(session: Session, skus: Sequence[str] | None = None, *, lock: bool = False) -> list[StockLot]:
    """The lots of these SKUs (all lots when None) in id order; `lock`: FOR UPDATE on Postgres, in that fixed order,
    so two allocations cannot deadlock (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(StockLot).order_by(col(StockLot.id))
    if skus is not None:
        query = query.where(col(StockLot.sku).in_(list(skus)))
    if lock:
        query = query.with_for_update()
    return list(session.exec(query).all())


def levels_of(session: Session, lots: Sequence[StockLot], now: datetime, *, all_lots: bool = False) -> list[LotLevel]:
    """Each lot with its locked reservations. `all_lots`: `lots` are every lot there is (no id filter needed)."""
    query = (
        select(Reservation.lot_id, func.sum(Reservation.qty))
        .where(Reservation.state == ReservationState.LOCKED)
        .group_by(col(Reservation.lot_id))
    )
    if not all_lots:
        query = query.where(col(Reservation.lot_id).in_([lot.id for lot in lots]))
    reserved = {lot_id: int(qty) for lot_id, qty in session.exec(query).all()}
    return [LotLevel(lot, reserved.get(lot.id or 0, 0), is_expired(lot, now)) for lot in lots]


def stock_levels(session: Session, now: datetime, skus: Sequence[str] | None = None) -> list[LotLevel]:
    """Every lot of these SKUs (all SKUs when None) with what it holds, has locked and may still promise."""
    return levels_of(session, lots_of(session, skus), now, all_lots=skus is None)


def available_by_pair(session: Session, now: datetime) -> dict[tuple[str, str], int]:
    """The same rule summed per (warehouse, SKU) by the database, for the stock KPIs: the on-hand units of the
    lots not expired, minus every locked reservation."""
    expired = and_(col(StockLot.expires_at).is_not(None), col(StockLot.expires_at) <= now)
    promised = func.sum(case((expired, 0), else_=col(StockLot.on_hand)))
    out: dict[tuple[str, str], int] = {}
    for warehouse, sku, units in session.exec(
        select(StockLot.warehouse, StockLot.sku, promised).group_by(col(StockLot.warehouse), col(StockLot.sku))
    ).all():
        out[(warehouse, sku)] = int(units or 0)
    locked = func.sum(Reservation.qty)
    for warehouse, sku, units in session.exec(
        select(Reservation.warehouse, Reservation.sku, locked)
        .where(Reservation.state == ReservationState.LOCKED)
        .group_by(col(Reservation.warehouse), col(Reservation.sku))
    ).all():
        out[(warehouse, sku)] = out.get((warehouse, sku), 0) - int(units or 0)
    return out
