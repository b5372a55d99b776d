"""Customers with their credit limit and exposure (services/billing/ledger.py: the figure the credit check uses)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.tables import Customer
from services.billing.ledger import CreditPosition, credit_positions


def customers_view(session: Session) -> list[dict[str, Any]]:
    positions = credit_positions(session)
    return [
        {
            "customer_id": c.customer_id,
            "name": c.name,
            "region": c.region,
            "credit_limit": str(c.credit_limit),
            "exposure": str(positions.get(c.customer_id, CreditPosition()).exposure),
            "new": c.first_order,
        }
        for c in session.exec(select(Customer).order_by(col(Customer.customer_id))).all()
    ]
