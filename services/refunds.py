"""Finance records a refund it made (a paid order cancelled or rejected): once per order, for the amount paid."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from models.tables import Refund, SalesOrder
from services.billing.ledger import book
from services.errors import CommandError
from services.queries.finance import REFUNDABLE


def record_refund(session: Session, order_no: str, *, reference: str, by: str, at: datetime) -> Refund:
    """In the caller's unit of work; CommandError when there is nothing to refund or it is already recorded."""
    order = session.get(SalesOrder, order_no)
    if order is None or order.status not in REFUNDABLE or not order.paid:
        raise CommandError(f"order {order_no} has no refund due (only a paid order that was cancelled or rejected)")
    if session.get(Refund, order_no) is not None:
        raise CommandError(f"the refund of order {order_no} is already recorded")
    reference = reference.strip()
    if not reference:
        raise CommandError("give the refund's payment reference")
    refund = Refund(
        order_no=order_no,
        amount=order.total,
        currency=order.currency,
        reference=reference[:200],
        made_by=by,
        made_at=at,
    )
    session.add(refund)
    try:
        session.flush()
    except IntegrityError:  # recorded a moment ago by someone else (Postgres lets both reach the insert)
        raise CommandError(f"the refund of order {order_no} is already recorded") from None
    # Paid back: the customer's prepayment no longer stands against anything (the ledger's balance returns to 0).
    book(
        session, key=f"refund:{order_no}", customer_id=order.customer_id, kind="refund", amount=order.total,
        currency=order.currency, at=at, order_no=order_no, reference=reference[:200], by=by,
    )  # fmt: skip
    return refund
