"""Credit exposure, defined once: what a customer owes (receivables) plus what their open orders will bill —
unpaid, not prepaid, not rejected / cancelled / failed (delivered and completed ones too, until invoices book
receivables). The credit check and every view read it here; the arithmetic is domain.credit.exposure.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlmodel import Session, col, select

from models.order import PaymentMethod
from models.status import NEVER_BILLED
from models.tables import SalesOrder


def open_order_totals(
    session: Session, customer_ids: list[str] | None = None, *, excluding_order: str | None = None
) -> dict[str, Decimal]:
    """Customer id → total of their open (billable, unpaid, not prepaid) orders; customers without any are absent."""
    query = select(SalesOrder.customer_id, col(SalesOrder.total)).where(
        col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]),
        col(SalesOrder.paid).is_(False),
        SalesOrder.payment_method != PaymentMethod.PREPAID.value,
    )
    if customer_ids is not None:
        query = query.where(col(SalesOrder.customer_id).in_(customer_ids))
    if excluding_order is not None:
        query = query.where(SalesOrder.order_no != excluding_order)
    totals: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for customer_id, total in session.exec(query).all():
        totals[customer_id] += total
    return dict(totals)
