"""Goods receipt: stock arrives in a warehouse lot, open requisitions it answers are closed, and the orders
waiting for that SKU are found (oldest first) so they can be told to look again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import col, select

from core.db import unit_of_work
from integrations.orders_client import CommandError
from models.status import OrderStatus
from models.tables import (
    Product,
    PurchaseRequisition,
    RequisitionState,
    SalesOrder,
    StockLot,
    Warehouse,
    utcnow,
)


class Receipt(BaseModel):
    sku: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    qty: int = Field(gt=0, le=10_000_000)
    lot: str = Field(min_length=1, max_length=64)
    bin: str = Field(default="RECV-01", min_length=1, max_length=64)
    expires_at: datetime | None = None


def receive(engine: Engine, receipt: Receipt) -> dict[str, Any]:
    """Book the receipt (a new lot, or more of an existing one) in one transaction."""
    now = utcnow()
    if receipt.expires_at is not None and receipt.expires_at.tzinfo is None:
        raise CommandError("expiry must carry a timezone (e.g. 2027-06-30T00:00:00Z)")
    with unit_of_work(engine) as session:
        if session.get(Product, receipt.sku) is None:
            raise CommandError(f"unknown SKU {receipt.sku}")
        if session.get(Warehouse, receipt.warehouse) is None:
            raise CommandError(f"unknown warehouse {receipt.warehouse}")
        lot = session.exec(
            select(StockLot).where(
                StockLot.sku == receipt.sku, StockLot.warehouse == receipt.warehouse, StockLot.lot == receipt.lot
            )
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
        lot_id = lot.id
    return {"sku": receipt.sku, "warehouse": receipt.warehouse, "lot": receipt.lot, "lot_id": lot_id,
            "qty": receipt.qty, "requisitions_closed": closed}  # fmt: skip


def backordered_orders(engine: Engine, sku: str) -> list[str]:
    """Orders waiting for stock of this SKU, oldest first (the order they are served in)."""
    with unit_of_work(engine) as session:
        orders = session.exec(
            select(SalesOrder)
            .where(SalesOrder.status == OrderStatus.BACKORDERED)
            .order_by(col(SalesOrder.created_at), col(SalesOrder.order_no))
        ).all()
        return [o.order_no for o in orders if any(line.get("sku") == sku for line in o.payload.get("lines", []))]


def requisitions_view(engine: Engine, *, include_closed: bool = False) -> list[dict[str, Any]]:
    with unit_of_work(engine) as session:
        query = select(PurchaseRequisition).order_by(col(PurchaseRequisition.id))
        if not include_closed:
            query = query.where(PurchaseRequisition.state == RequisitionState.OPEN)
        return [
            {
                "id": r.id,
                "sku": r.sku,
                "warehouse": r.warehouse,
                "qty": r.qty,
                "reason": r.reason,
                "order_no": r.order_no,
                "state": r.state,
                "created_at": r.created_at.isoformat(),
            }  # fmt: skip
            for r in session.exec(query).all()
        ]
