"""The receivables ledger: booking entries, and credit exposure defined once on it.

exposure = receivables — the customer's ledger balance: opening balance + invoices + refunds paid out − payments −
           credit notes —
         + to bill — the part of each billable order not invoiced yet, for orders on credit or cash on delivery,
           or prepaid and paid (their payment is in the ledger already; a prepaid order not paid yet carries no
           risk: it does not ship unpaid).
One query for any set of customers; the credit check and every view read it here (domain/credit.py adds the order
being checked and compares with the limit).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, literal, or_, union_all
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.order import PaymentMethod
from models.sqltypes import MoneyCents
from models.status import NEVER_BILLED
from models.tables import Invoice, LedgerEntry, SalesOrder

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CreditPosition:
    receivables: Decimal = ZERO  # the ledger balance (negative: money of theirs we hold)
    to_bill: Decimal = ZERO  # open orders' part not invoiced yet

    @property
    def exposure(self) -> Decimal:
        return self.receivables + self.to_bill


def book(
    session: Session,
    *,
    key: str,
    customer_id: str,
    kind: str,
    amount: Decimal,
    currency: str,
    at: datetime,
    order_no: str | None = None,
    invoice_no: str | None = None,
    reference: str = "",
    by: str = "",
) -> bool:
    """One entry, in the caller's unit of work, once per `key` (False: booked before)."""
    if session.exec(select(LedgerEntry.id).where(LedgerEntry.key == key)).first() is not None:
        return False
    session.add(
        LedgerEntry(
            key=key, customer_id=customer_id, kind=kind, amount=amount, currency=currency, order_no=order_no,
            invoice_no=invoice_no, reference=reference[:200], at=at, by=by[:64],
        )
    )  # fmt: skip
    return True


def book_prepayment(
    session: Session,
    order_no: str,
    customer_id: str,
    amount: Decimal,
    currency: str,
    *,
    at: datetime,
    reference: str,
    by: str,
) -> bool:
    """An order's prepayment (paid in full before it ships): once per order, whoever records it."""
    return book(
        session, key=f"prepayment:{order_no}", customer_id=customer_id, kind="payment", amount=-amount,
        currency=currency, at=at, order_no=order_no, reference=reference, by=by,
    )  # fmt: skip


def credit_positions(
    session: Session, customer_ids: Collection[str] | None = None, *, excluding_order: str | None = None
) -> dict[str, CreditPosition]:
    """Customer id → receivables and to-bill (without `excluding_order`'s part), in one statement; customers with
    neither are absent. Summed by the database in integer cents (exact)."""
    invoiced = (
        select(Invoice.order_no, func.sum(col(Invoice.total)).label("invoiced"))
        .where(Invoice.kind == "invoice")
        .group_by(col(Invoice.order_no))
        .subquery()
    )
    to_bill: Select[Any, Any, Any] = (
        sa_select(
            col(SalesOrder.customer_id).label("customer_id"),
            literal("to_bill").label("part"),
            (col(SalesOrder.total) - func.coalesce(invoiced.c.invoiced, 0)).label("amount"),
        )
        .outerjoin(invoiced, invoiced.c.order_no == SalesOrder.order_no)
        .where(
            col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]),
            or_(col(SalesOrder.payment_method) != PaymentMethod.PREPAID.value, col(SalesOrder.paid).is_(True)),
        )
    )
    booked: Select[Any, Any, Any] = sa_select(
        col(LedgerEntry.customer_id).label("customer_id"),
        literal("receivables").label("part"),
        col(LedgerEntry.amount).label("amount"),
    )
    if customer_ids is not None:
        ids = list(customer_ids)
        to_bill = to_bill.where(col(SalesOrder.customer_id).in_(ids))
        booked = booked.where(col(LedgerEntry.customer_id).in_(ids))
    if excluding_order is not None:
        to_bill = to_bill.where(col(SalesOrder.order_no) != excluding_order)
    both = union_all(booked, to_bill).subquery()
    total = func.sum(both.c.amount, type_=MoneyCents())
    parts: dict[str, dict[str, Decimal]] = {}
    for customer_id, part, amount in session.execute(
        select(both.c.customer_id, both.c.part, total).group_by(both.c.customer_id, both.c.part)
    ).all():
        parts.setdefault(customer_id, {})[part] = amount if amount is not None else ZERO
    return {cid: CreditPosition(p.get("receivables", ZERO), p.get("to_bill", ZERO)) for cid, p in parts.items()}


def balances(session: Session, customer_ids: Collection[str] | None = None) -> dict[str, Decimal]:
    """Customer id → ledger balance (open receivables; negative: money of theirs we hold)."""
    total = func.sum(col(LedgerEntry.amount), type_=MoneyCents())
    query = select(LedgerEntry.customer_id, total).group_by(col(LedgerEntry.customer_id))
    if customer_ids is not None:
        query = query.where(col(LedgerEntry.customer_id).in_(list(customer_ids)))
    return {customer_id: amount for customer_id, amount in session.exec(query).all() if amount is not None}
