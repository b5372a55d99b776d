"""The product list: list price, active flag and what may still be promised (availability.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlmodel import Session, col, select

from models.tables import Product, utcnow
from services.queries.availability import stock_levels


def products_view(session: Session) -> list[dict[str, Any]]:
    available: dict[str, int] = defaultdict(int)
    for level in stock_levels(session, utcnow()):
        available[level.lot.sku] += level.available
    return [
        {
            "sku": p.sku,
            "name": p.name,
            "unit_price": str(p.unit_price),
            "active": p.active,
            "available": available[p.sku],
        }
        for p in session.exec(select(Product).order_by(col(Product.sku))).all()
    ]
