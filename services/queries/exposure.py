"""Credit exposure, defined once: what a customer owes (receivables) plus what their open orders will bill —
unpaid, not prepaid, not rejected / cancelled / failed (delivered and completed ones too, until invoices book
receivables). The credit check and every view read it here; the arithmetic is domain.credit.exposure.
"""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, col, func, select

from models.order import PaymentMethod
from models.sqltypes import MoneyCents
from models.status import NEVER_BILLED
from models.tables import SalesOrder


def open_order_totals(
    session: Session, customer_ids: list[str] | None = None, *, excluding_order: str | None = None
) -> dict[str, Decimal]:
    """Customer id → total of their open (billable, unpaid, not prepaid) orders; customers without any are absent.
    Summed by the database in integer cents (MoneyCents: exact), one row per customer."""
    total = func.sum(col(SalesOrder.total), type_=MoneyCents())
    query = (
        select(SalesOrder.customer_id, total)
        .where(
            col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]),
            col(SalesOrder.paid).is_(False),
            SalesOrder.payment_method != PaymentMethod.PREPAID.value,
        )
        .group_by(col(SalesOrder.customer_id))
    )
    if customer_ids is not None:
        query = query.where(col(SalesOrder.customer_id).in_(customer_ids))
    if excluding_order is not None:
        query = query.where(SalesOrder.order_no != excluding_order)
    return {customer_id: amount for customer_id, amount in session.exec(query).all() if amount is not None}
