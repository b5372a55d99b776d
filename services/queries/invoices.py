"""The invoices list (finance's /console/finance/invoices): invoices and credit notes with what each leaves open and
its ageing bucket, filtered by state, customer and (for a sales rep) their own orders — in one query.

open = total − what payments, credit notes and write-offs took off it (services/billing/payments.py SETTLING, the
one definition); a credit note leaves nothing open itself (it settles the invoice it corrects).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.billing import ZERO, ageing_bucket
from models.sqltypes import MoneyCents
from models.tables import Customer, Invoice, LedgerEntry, SalesOrder
from services.billing.payments import SETTLING

LIST_LIMIT = 200
InvoiceState = Literal["open", "overdue", "all"]


@dataclass(frozen=True)
class InvoiceRow:
    invoice_no: str
    kind: str
    corrects: str | None
    order_no: str
    customer_id: str
    customer_name: str
    tracking_no: str | None
    currency: str
    total: Decimal
    open: Decimal
    issued_at: datetime
    due_at: datetime
    bucket: str  # ageing bucket of what is open ("" when nothing is, or for a credit note)


def invoice_rows(
    session: Session,
    *,
    as_of: datetime,
    state: InvoiceState = "open",
    customer_id: str | None = None,
    sales_rep: str | None = None,
    limit: int = LIST_LIMIT,
) -> list[InvoiceRow]:
    """Open (or overdue, or all) invoices, the oldest due first; `all` lists credit notes too, newest first."""
    settled = (
        select(
            col(LedgerEntry.invoice_no).label("invoice_no"),
            func.sum(col(LedgerEntry.amount), type_=MoneyCents()).label("settled"),
        )
        .where(col(LedgerEntry.kind).in_(SETTLING), col(LedgerEntry.invoice_no).is_not(None))
        .group_by(col(LedgerEntry.invoice_no))
        .subquery()
    )
    taken = func.coalesce(settled.c.settled, 0, type_=MoneyCents())
    query = (
        select(Invoice, taken, Customer.name)
        .outerjoin(settled, settled.c.invoice_no == Invoice.invoice_no)
        .outerjoin(Customer, col(Customer.customer_id) == col(Invoice.customer_id))
    )
    if state == "all":
        query = query.order_by(col(Invoice.issued_at).desc(), col(Invoice.seq).desc())
    else:
        query = query.where(Invoice.kind == "invoice", col(Invoice.total) + taken > 0)
        if state == "overdue":
            query = query.where(col(Invoice.due_at) < as_of)
        query = query.order_by(col(Invoice.due_at), col(Invoice.seq))
    if customer_id:
        query = query.where(Invoice.customer_id == customer_id)
    if sales_rep is not None:
        mine = select(SalesOrder.order_no).where(SalesOrder.sales_rep == sales_rep)
        query = query.where(col(Invoice.order_no).in_(mine))
    rows: list[InvoiceRow] = []
    for invoice, took, name in session.exec(query.limit(limit)).all():
        left = invoice.total + (took or ZERO) if invoice.kind == "invoice" else ZERO
        rows.append(
            InvoiceRow(
                invoice_no=invoice.invoice_no, kind=invoice.kind, corrects=invoice.corrects,
                order_no=invoice.order_no, customer_id=invoice.customer_id, customer_name=name or invoice.customer_id,
                tracking_no=invoice.tracking_no, currency=invoice.currency, total=invoice.total, open=max(left, ZERO),
                issued_at=invoice.issued_at, due_at=invoice.due_at,
                bucket=ageing_bucket(invoice.due_at, as_of) if left > 0 else "",
            )
        )  # fmt: skip
    return rows
