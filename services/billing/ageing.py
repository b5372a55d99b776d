"""The ageing report of receivables: what each customer owes, by how long it has been overdue at a day.

Per customer, read off the receivables ledger:
- each open invoice — its total less what payments, credit notes and write-offs took off it (payments.SETTLING),
  when that leaves something — in the bucket of its days overdue at `as_of` (domain/billing.py `ageing_bucket`:
  whole UTC calendar days past the due date; "current" until the due day has passed);
- `unallocated` = balance − Σ open invoices: the part of the balance no open invoice carries — opening balances,
  payments applied to no invoice (an overpayment, a cash-on-delivery collection or a prepayment booked before its
  invoice), refunds paid out, and whatever settled an invoice beyond its total (a credit note on an invoice already
  paid). Positive: owed to us but on no invoice (an opening balance); negative: money of the customer's that we
  hold, to set against their next invoice or to refund;
- `balance`: the customer's ledger balance (ledger.py `balances`, the same figure credit exposure starts from).
So a customer's buckets + unallocated = their balance, and the totals row adds the customers' rows.

The ledger is read as it stands (every entry booked so far) and aged at `as_of` — a day in the past ages today's open
invoices as they stood overdue then; it does not replay the ledger to that day. Two queries whatever the number of
customers (the open invoices with their settled sums; the balances), and one for the customers' names.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, func, type_coerce
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from domain.billing import AGEING_BUCKETS, ZERO, ageing_bucket
from models.sqltypes import MoneyCents
from models.tables import Customer, Invoice, LedgerEntry
from services.billing.ledger import balances
from services.billing.payments import SETTLING
from services.errors import NotFound

COLUMNS = ("customer_id", "name", *AGEING_BUCKETS, "unallocated", "balance")
TOTAL = "total"  # the totals row's customer_id


@dataclass(frozen=True)
class CustomerAgeing:
    customer_id: str
    name: str
    buckets: dict[str, Decimal]  # AGEING_BUCKETS → what the customer's open invoices in it leave open
    unallocated: Decimal  # balance − Σ buckets (see the module's docstring)
    balance: Decimal  # the customer's ledger balance
    open_invoices: int = 0

    @property
    def open(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    def row(self) -> dict[str, str]:
        return {
            "customer_id": self.customer_id,
            "name": self.name,
            **{bucket: str(self.buckets[bucket]) for bucket in AGEING_BUCKETS},
            "unallocated": str(self.unallocated),
            "balance": str(self.balance),
        }


@dataclass(frozen=True)
class AgeingReport:
    as_of: datetime
    customers: list[CustomerAgeing] = field(default_factory=list)  # by customer id

    @property
    def totals(self) -> CustomerAgeing:
        return CustomerAgeing(
            TOTAL,
            "",
            {b: sum((c.buckets[b] for c in self.customers), ZERO) for b in AGEING_BUCKETS},
            sum((c.unallocated for c in self.customers), ZERO),
            sum((c.balance for c in self.customers), ZERO),
            sum(c.open_invoices for c in self.customers),
        )

    def rows(self) -> list[dict[str, str]]:
        """One dict per customer (COLUMNS, amounts as decimal strings), then the totals row (customer_id `total`)."""
        return [customer.row() for customer in self.customers] + [self.totals.row()]

    def csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["as_of", *COLUMNS])
        for row in self.rows():
            writer.writerow([self.as_of.date().isoformat(), *(row[column] for column in COLUMNS)])
        return buffer.getvalue()


def ageing(session: Session, as_of: datetime, customer_ids: Collection[str] | None = None) -> AgeingReport:
    """The report at `as_of` (timezone-aware; only its UTC day counts). `customer_ids` None: every customer whose
    balance is not zero or who has an open invoice; given: those customers, each with a row even when they owe
    nothing — NotFound for an id that is neither a customer nor in the ledger."""
    ids = sorted(set(customer_ids)) if customer_ids is not None else None
    opened: dict[str, dict[str, Decimal]] = {}
    counted: dict[str, int] = {}
    for customer_id, due_at, left in session.execute(_open_invoices(ids)).all():
        buckets = opened.setdefault(customer_id, dict.fromkeys(AGEING_BUCKETS, ZERO))
        buckets[ageing_bucket(due_at, as_of)] += left
        counted[customer_id] = counted.get(customer_id, 0) + 1
    owed = balances(session, ids)
    names_query = select(Customer.customer_id, Customer.name)
    if ids is not None:
        names_query = names_query.where(col(Customer.customer_id).in_(ids))
    names = dict(session.exec(names_query).all())
    if ids is None:
        wanted = sorted({cid for cid, amount in owed.items() if amount != 0} | set(opened))
    else:
        unknown = [cid for cid in ids if cid not in names and cid not in owed]
        if unknown:
            raise NotFound(f"unknown customer {', '.join(unknown)}")
        wanted = ids
    customers = []
    for customer_id in wanted:
        buckets = opened.get(customer_id, dict.fromkeys(AGEING_BUCKETS, ZERO))
        balance = owed.get(customer_id, ZERO)
        unallocated = balance - sum(buckets.values(), ZERO)
        customers.append(
            CustomerAgeing(
                customer_id, names.get(customer_id, ""), buckets, unallocated, balance, counted.get(customer_id, 0)
            )
        )
    return AgeingReport(as_of, customers)


def _open_invoices(ids: list[str] | None) -> Select[str, datetime, Decimal]:
    """customer_id, due_at, open amount of every invoice that leaves something open: one statement, the settled
    sums (payments.SETTLING, as `settled` reads them) grouped by the ledger's invoice_no beside the invoices."""
    settling: Select[str | None, Decimal] = (
        sa_select(col(LedgerEntry.invoice_no).label("invoice_no"), func.sum(col(LedgerEntry.amount)).label("settled"))
        .where(col(LedgerEntry.kind).in_(SETTLING), col(LedgerEntry.invoice_no).is_not(None))
        .group_by(col(LedgerEntry.invoice_no))
    )
    if ids is not None:
        settling = settling.where(col(LedgerEntry.customer_id).in_(ids))
    paid = settling.subquery()
    left = col(Invoice.total) + func.coalesce(paid.c.settled, 0)  # integer cents in the database
    query = (
        sa_select(col(Invoice.customer_id), col(Invoice.due_at), type_coerce(left, MoneyCents()))
        .outerjoin(paid, paid.c.invoice_no == col(Invoice.invoice_no))
        .where(col(Invoice.kind) == "invoice", left > 0)
    )
    if ids is not None:
        query = query.where(col(Invoice.customer_id).in_(ids))
    return query
