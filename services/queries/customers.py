"""Customers with their credit limit and exposure (exposure.py: the same figure the credit check uses)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from domain.credit import exposure
from models.tables import Customer
from services.queries.exposure import open_order_totals


def customers_view(session: Session) -> list[dict[str, Any]]:
    open_orders = open_order_totals(session)
    return [
        {
            "customer_id": c.customer_id,
            "name": c.name,
            "region": c.region,
            "credit_limit": str(c.credit_limit),
            "exposure": str(exposure(c.receivables, open_orders.get(c.customer_id, Decimal("0.00")))),
            "new": c.first_order,
        }
        for c in session.exec(select(Customer).order_by(col(Customer.customer_id))).all()
    ]
