"""Goods receipt: stock arrives in a warehouse lot, open requisitions it answers are closed, and the orders
waiting for that SKU are found (oldest first) so they can be told to look again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import col, select

from core.db import read_only, unit_of_work
from models.status import OrderStatus
from models.tables import (
    Product,
    PurchaseRequisition,
    RequisitionState,
    SalesOrder,
    StockLot,
    StockReceipt,
    Warehouse,
    utcnow,
)
from services.errors import CommandError, ReceiptConflict


class Receipt(BaseModel):
    sku: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    qty: int = Field(gt=0, le=10_000_000)
    lot: str = Field(min_length=1, max_length=64)
    bin: str = Field(default="RECV-01", min_length=1, max_length=64)
    expires_at: datetime | None = None
    # The sender's receipt number: the same number again books nothing and answers as the first time.
    receipt_no: str | None = Field(default=None, min_length=1, max_length=100)


def _answer(row: StockReceipt, *, duplicate: bool) -> dict[str, Any]:
    return {"receipt_id": row.id, "receipt_no": row.receipt_no, "sku": row.sku, "warehouse": row.warehouse,
            "lot": row.lot, "lot_id": row.lot_id, "qty": row.qty, "received_by": row.received_by,
            "requisitions_closed": row.requisitions_closed, "at": row.at.isoformat(),
            "duplicate": duplicate}  # fmt: skip


def receive(engine: Engine, receipt: Receipt, received_by: str = "", *, answering: int | None = None) -> dict[str, Any]:
    """Book the receipt (a new lot, or more of an existing one) in one transaction. `answering`: the requisition
    the receipt is booked against (the ops page): refused unless it is still open, so a second receipt for it
    (another lot, another tab) books nothing; the same receipt again still answers as the first time."""
    now = utcnow()
    if receipt.expires_at is not None and receipt.expires_at.tzinfo is None:
        raise CommandError("expiry must carry a timezone (e.g. 2027-06-30T00:00:00Z)")
    with unit_of_work(engine) as session:
        if receipt.receipt_no is not None:
            earlier = session.exec(select(StockReceipt).where(StockReceipt.receipt_no == receipt.receipt_no)).first()
            if earlier is not None:
                same = (earlier.sku, earlier.warehouse, earlier.lot, earlier.qty) == (
                    receipt.sku,
                    receipt.warehouse,
                    receipt.lot,
                    receipt.qty,
                )
                if not same:
                    raise ReceiptConflict(f"receipt {receipt.receipt_no} was already booked with other content")
                return _answer(earlier, duplicate=True)
        if answering is not None:
            requisition = session.exec(
                select(PurchaseRequisition).where(PurchaseRequisition.id == answering).with_for_update()
            ).first()
            if requisition is None or requisition.state != RequisitionState.OPEN:
                raise CommandError(f"requisition {answering} is no longer open: it was received or closed")
        if session.get(Product, receipt.sku) is None:
            raise CommandError(f"unknown SKU {receipt.sku}")
        if session.get(Warehouse, receipt.warehouse) is None:
            raise CommandError(f"unknown warehouse {receipt.warehouse}")
        # Locked (Postgres; SQLite's BEGIN IMMEDIATE already serialises): a dispatch consuming this lot at the
        # same moment must not be overwritten by our read-modify-write.
        lot = session.exec(
            select(StockLot)
            .where(StockLot.sku == receipt.sku, StockLot.warehouse == receipt.warehouse, StockLot.lot == receipt.lot)
            .with_for_update()
        ).first()
        if lot is None:
            lot = StockLot(
                warehouse=receipt.warehouse,
                sku=receipt.sku,
                bin=receipt.bin,
                lot=receipt.lot,
                received_at=now,
                on_hand=receipt.qty,
                expires_at=receipt.expires_at,
            )
        else:
            lot.on_hand += receipt.qty
        session.add(lot)
        closed = []
        for requisition in session.exec(
            select(PurchaseRequisition).where(
                PurchaseRequisition.sku == receipt.sku,
                PurchaseRequisition.warehouse == receipt.warehouse,
                PurchaseRequisition.state == RequisitionState.OPEN,
            )
        ):
            requisition.state = RequisitionState.RECEIVED
            requisition.open_key = None  # the next shortfall may open a new one
            requisition.closed_at = now
            session.add(requisition)
            closed.append(requisition.id)
        session.flush()
        row = StockReceipt(
            receipt_no=receipt.receipt_no,
            sku=receipt.sku,
            warehouse=receipt.warehouse,
            lot_id=lot.id or 0,
            lot=receipt.lot,
            qty=receipt.qty,
            received_by=received_by,
            requisitions_closed=[c for c in closed if c is not None],
            at=now,
        )
        session.add(row)
        session.flush()
        return _answer(row, duplicate=False)


def backordered_orders(engine: Engine, sku: str) -> list[str]:
    """Orders waiting for stock of this SKU, oldest first (the order they are served in)."""
    with read_only(engine) as session:
        orders = session.exec(
            select(SalesOrder)
            .where(SalesOrder.status == OrderStatus.BACKORDERED)
            .order_by(col(SalesOrder.created_at), col(SalesOrder.order_no))
        ).all()
        return [o.order_no for o in orders if any(line.get("sku") == sku for line in o.payload.get("lines", []))]
