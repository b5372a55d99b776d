"""A SKU's stock per warehouse: on hand, reserved, available (availability.py), expired, incoming."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.tables import Product, PurchaseRequisition, RequisitionState, Warehouse, utcnow
from services.errors import NotFound
from services.queries.availability import stock_levels


def inventory_view(session: Session, sku: str) -> dict[str, Any]:
    product = session.get(Product, sku)
    if product is None:
        raise NotFound(f"unknown SKU {sku}")
    on_hand: dict[str, int] = defaultdict(int)
    reserved: dict[str, int] = defaultdict(int)
    available: dict[str, int] = defaultdict(int)
    expired: dict[str, int] = defaultdict(int)  # on hand but past its expiry: never promised
    for level in stock_levels(session, utcnow(), [sku]):
        code = level.lot.warehouse
        on_hand[code] += level.lot.on_hand
        reserved[code] += level.reserved
        available[code] += level.available
        if level.expired:
            expired[code] += level.lot.on_hand
    # Shown apart: what open purchase requisitions will bring (not promised to anyone yet).
    incoming = dict(
        session.exec(
            select(PurchaseRequisition.warehouse, func.sum(PurchaseRequisition.qty))
            .where(PurchaseRequisition.sku == sku, PurchaseRequisition.state == RequisitionState.OPEN)
            .group_by(PurchaseRequisition.warehouse)
        ).all()
    )
    warehouses = [
        {
            "warehouse": wh.code,
            "region": wh.region,
            "on_hand": on_hand[wh.code],
            "reserved": reserved[wh.code],
            "available": available[wh.code],
            "expired": expired[wh.code],
            "incoming": int(incoming.get(wh.code, 0)),
        }
        for wh in session.exec(select(Warehouse).order_by(col(Warehouse.code))).all()
    ]
    return {
        "sku": sku,
        "name": product.name,
        "warehouses": warehouses,
        "on_hand": sum(w["on_hand"] for w in warehouses),
        "reserved": sum(w["reserved"] for w in warehouses),
        "available": sum(w["available"] for w in warehouses),
        "incoming": sum(w["incoming"] for w in warehouses),
    }
