"""A payment against an order's invoices, booked in the receivables ledger: applied to the open invoices oldest
due first, any excess kept as unapplied cash (it lowers the customer's balance all the same). Idempotent on the
payment's reference: the same payment recorded again (a retried request, a re-sent webhook) books nothing twice;
the same reference for a different order or amount is refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.billing import CENTS, ZERO
from models.sqltypes import MoneyCents
from models.tables import Invoice, LedgerEntry, SalesOrder
from services.billing.ledger import book
from services.errors import CommandError, OrderNotFound, Refused
from workflows.contract import ErrorType

SETTLING = ("payment", "credit_note", "write_off")  # entries that lower what an invoice leaves open
REFERENCE_MAX = 150  # so that `payment:REF:INVOICE` fits the ledger's 200-character key


@dataclass(frozen=True)
class OpenInvoice:
    invoice_no: str
    due_at: datetime
    total: Decimal
    open: Decimal


@dataclass
class PaymentBooked:
    reference: str
    amount: Decimal
    applied: list[tuple[str, Decimal]] = field(default_factory=list)  # invoice → amount applied to it
    unapplied: Decimal = ZERO
    again: bool = False  # this payment had been recorded before: nothing was booked now


def settled(session: Session, invoice_nos: Collection[str]) -> dict[str, Decimal]:
    """What payments and credit notes took off each of these invoices (negative sums; absent: nothing), read
    through the ledger's invoice_no index — never a scan of the whole ledger. One definition for every reader."""
    found: dict[str, Decimal] = {}
    if not invoice_nos:
        return found
    for number, amount in session.exec(
        select(LedgerEntry.invoice_no, func.sum(col(LedgerEntry.amount), type_=MoneyCents()))
        .where(col(LedgerEntry.invoice_no).in_(list(invoice_nos)), col(LedgerEntry.kind).in_(SETTLING))
        .group_by(col(LedgerEntry.invoice_no))
    ).all():
        if number is not None and amount is not None:
            found[number] = amount
    return found


def open_invoices(session: Session, order_no: str) -> list[OpenInvoice]:
    """The order's invoices with something left to pay, oldest due first."""
    invoices = session.exec(
        select(Invoice)
        .where(Invoice.order_no == order_no, Invoice.kind == "invoice")
        .order_by(col(Invoice.due_at), col(Invoice.seq))
    ).all()
    paid = settled(session, [i.invoice_no for i in invoices])
    found = [OpenInvoice(i.invoice_no, i.due_at, i.total, i.total + paid.get(i.invoice_no, ZERO)) for i in invoices]
    return [invoice for invoice in found if invoice.open > 0]


def record_payment(
    session: Session,
    order_no: str,
    *,
    reference: str,
    amount: Decimal | None,
    by: str,
    at: datetime,
    only: str | None = None,
) -> PaymentBooked:
    """In the caller's unit of work. `amount` None: what the order's invoices leave open; `only`: against that
    invoice alone (a payment that names it). CommandError (changing nothing) when there is no such order, nothing
    is open, the amount is not positive cents, or the reference was used for another payment."""
    reference = reference.strip()
    if not reference:
        raise Refused("give the payment's reference (the bank's or the payment provider's)", ErrorType.INVALID)
    if len(reference) > REFERENCE_MAX:
        raise Refused(f"a payment reference has at most {REFERENCE_MAX} characters", ErrorType.INVALID)
    if amount is not None and not amount.is_finite():
        raise Refused(f"a payment is a positive amount in cents, not {amount}", ErrorType.INVALID)
    order = session.get(SalesOrder, order_no)
    if order is None:
        raise OrderNotFound(f"unknown order {order_no}")
    lock_order(session, order_no)  # two payments of one invoice at once: the second sees what the first took
    earlier = payment_parts(session, reference)
    if earlier:
        return _same_payment(order_no, reference, amount, earlier)
    invoices = [invoice for invoice in open_invoices(session, order_no) if only in (None, invoice.invoice_no)]
    if not invoices:
        raise CommandError(f"order {order_no} has no open invoice to pay")
    owed = sum((invoice.open for invoice in invoices), ZERO)
    amount = owed if amount is None else amount
    if amount <= 0 or amount != amount.quantize(CENTS):
        raise Refused(f"a payment is a positive amount in cents, not {amount}", ErrorType.INVALID)
    booked = PaymentBooked(reference, amount)
    left = amount
    for invoice in invoices:
        if left <= 0:
            break
        take = min(invoice.open, left)
        book(
            session, key=payment_key(reference, invoice.invoice_no), customer_id=order.customer_id, kind="payment",
            amount=-take, currency=order.currency, at=at, order_no=order_no, invoice_no=invoice.invoice_no,
            reference=reference, by=by,
        )  # fmt: skip
        booked.applied.append((invoice.invoice_no, take))
        left -= take
    if left > 0:  # more than is open: the customer's money, held against what they will owe next
        book(
            session, key=payment_key(reference, None), customer_id=order.customer_id, kind="payment",
            amount=-left, currency=order.currency, at=at, order_no=order_no, reference=reference, by=by,
        )  # fmt: skip
        booked.unapplied = left
    return booked


def payment_key(reference: str, invoice_no: str | None) -> str:
    """The ledger key of a payment's part: per invoice it is applied to, or `unapplied`."""
    return f"payment:{reference}:{invoice_no or 'unapplied'}"


def payment_parts(session: Session, reference: str) -> list[LedgerEntry]:
    """The entries of the payment with this reference (the indexed reference column, compared exactly; the keys
    say which of them are this payment's parts — a prepayment with the same bank reference is not one)."""
    prefix = f"payment:{reference}:"  # payment_key's form
    rows = session.exec(select(LedgerEntry).where(LedgerEntry.reference == reference, LedgerEntry.kind == "payment"))
    return [entry for entry in rows if entry.key.startswith(prefix)]


def _same_payment(order_no: str, reference: str, amount: Decimal | None, earlier: list[LedgerEntry]) -> PaymentBooked:
    total = -sum((entry.amount for entry in earlier), ZERO)
    if any(entry.order_no != order_no for entry in earlier) or (amount is not None and amount != total):
        raise CommandError(f"payment {reference} is already booked ({total}) for order {earlier[0].order_no}")
    applied = [(e.invoice_no, -e.amount) for e in earlier if e.invoice_no]
    unapplied = -sum((e.amount for e in earlier if not e.invoice_no), ZERO)
    return PaymentBooked(reference, total, applied, unapplied, again=True)


def paid_in_full(session: Session, order_no: str, *, reference: str, by: str, at: datetime) -> PaymentBooked | None:
    """A platform says the whole order is paid (a channel's "paid" event after intake: a cash-on-delivery order the
    merchant marked paid): book what the order's total is still short of — against its open invoices, the rest
    held unapplied for invoices to come. None when nothing is short (its prepayment, a carrier's collection or a
    bank transfer booked it already): the same money is never booked from two sources. Idempotent on `reference`."""
    order = session.get(SalesOrder, order_no)
    if order is None:
        raise OrderNotFound(f"unknown order {order_no}")
    lock_order(session, order_no)
    earlier = payment_parts(session, reference.strip())
    if earlier:
        return _same_payment(order_no, reference.strip(), None, earlier)
    short = short_of(session, order)
    if short <= 0:
        return None
    if open_invoices(session, order_no):
        return record_payment(session, order_no, reference=reference, amount=short, by=by, at=at)
    book(
        session, key=payment_key(reference.strip(), None), customer_id=order.customer_id, kind="payment",
        amount=-short, currency=order.currency, at=at, order_no=order_no, reference=reference.strip(), by=by,
    )  # fmt: skip
    return PaymentBooked(reference.strip(), short, unapplied=short)


def short_of(session: Session, order: SalesOrder) -> Decimal:
    """What the order's total is still short of in payments booked for it (a prepayment, transfers, a carrier's
    collection, a platform's paid event): 0 or less when it is paid in full."""
    booked = session.exec(
        select(func.sum(col(LedgerEntry.amount), type_=MoneyCents())).where(
            LedgerEntry.order_no == order.order_no, LedgerEntry.kind == "payment"
        )
    ).one()
    return order.total + (booked or ZERO)


def lock_order(session: Session, order_no: str) -> None:
    """Hold the order's row until the caller's transaction ends (Postgres; SQLite's write lock serialises writers
    anyway): two sources booking the order's money at once (a platform's paid event, a carrier's collection, a
    transfer) take turns, so the second sees what the first booked."""
    session.exec(select(SalesOrder.order_no).where(SalesOrder.order_no == order_no).with_for_update()).first()
