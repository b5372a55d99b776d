"""Correcting an invoice, in the caller's transaction: a credit note (a document of its own, numbered in the same
gap-free series, `corrects` naming the invoice, its lines and amounts negative) and its ledger entry against the
invoice; or a write-off of what a customer will not pay (a ledger entry only: no goods came back, no tax changes).

Both are keyed like invoices are: the same correction asked again (a retried step, a re-sent carrier event) finds
the first and books nothing. An invoice is never credited beyond its total, nor written off beyond what is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.billing import ZERO, BillingError, LineAmounts, invoice_number, line_amounts
from models.sqltypes import MoneyCents
from models.tables import Invoice, InvoiceLine, LedgerEntry
from services.billing.invoices import BASIS_POINTS, next_number
from services.billing.ledger import book
from services.billing.payments import settled
from services.errors import CommandError

REASON_MAX = 500


def issue_credit_note(
    session: Session,
    *,
    key: str,
    invoice_no: str,
    reason: str,
    now: datetime,
    by: str = "",
    lines: Mapping[int, int] | None = None,
    zone: tzinfo = UTC,
) -> Invoice | None:
    """Credit `invoice_no` in full, or `lines` of it (invoice line position → units to credit). None: `key` was
    issued before. Refused (CommandError, nothing booked) for an unknown invoice, a credit note, units beyond
    what the invoice billed less what was credited before, or no reason."""
    if session.exec(select(Invoice.invoice_no).where(Invoice.key == key)).first() is not None:
        return None
    reason = reason.strip()
    if not reason:
        raise CommandError("say why the invoice is credited")
    invoice = session.get(Invoice, invoice_no)
    if invoice is None or invoice.kind != "invoice":
        raise CommandError(f"no invoice {invoice_no} to credit")
    billed = {
        line.position: line for line in session.exec(select(InvoiceLine).where(InvoiceLine.invoice_no == invoice_no))
    }
    taken = credited_lines(session, invoice_no)
    already = {position: back.units for position, back in taken.items()}
    wanted = dict(lines) if lines is not None else {p: line.qty - already.get(p, 0) for p, line in billed.items()}
    wanted = {position: qty for position, qty in wanted.items() if qty != 0}
    if not wanted:
        raise CommandError(f"invoice {invoice_no} is credited in full already")
    amounts: list[tuple[InvoiceLine, LineAmounts]] = []
    for position, qty in sorted(wanted.items()):
        line = billed.get(position)
        if line is None:
            raise CommandError(f"invoice {invoice_no} has no line {position}")
        left = line.qty - already.get(position, 0)
        if not 0 < qty <= left:
            raise CommandError(f"invoice {invoice_no} line {position} ({line.sku}): {left} units left to credit")
        amounts.append((line, _credit_amounts(line, qty, taken.get(position, Credited()))))
    net = sum((a.net for _, a in amounts), ZERO)
    tax = sum((a.tax for _, a in amounts), ZERO)
    gross = sum((a.gross for _, a in amounts), ZERO)
    year = now.astimezone(zone).year  # the series of the year it is issued in, as invoices are numbered
    seq = next_number(session, invoice.entity, year)
    number = invoice_number(invoice.entity, year, seq)
    note = Invoice(
        invoice_no=number, key=key, kind="credit_note", entity=invoice.entity, year=year, seq=seq,
        order_no=invoice.order_no, customer_id=invoice.customer_id, tracking_no=invoice.tracking_no,
        corrects=invoice_no, currency=invoice.currency, net=-net, tax=-tax, total=-gross, issued_at=now, due_at=now,
        reason=reason[:REASON_MAX],
    )  # fmt: skip
    session.add(note)
    for index, (line, a) in enumerate(amounts):
        session.add(
            InvoiceLine(
                invoice_no=number, position=index, sku=a.sku, description=line.description, qty=-a.qty,
                unit_price=a.unit_price, tax_rate_bp=line.tax_rate_bp, net=-a.net, tax=-a.tax, gross=-a.gross,
                corrects_line=line.position,
            )
        )  # fmt: skip
    # Against the invoice it corrects: what the invoice leaves open falls by the credit (below zero when it had
    # been paid: the customer's money, held until it is refunded or set against their next invoice).
    book(
        session, key=f"credit_note:{number}", customer_id=invoice.customer_id, kind="credit_note", amount=-gross,
        currency=invoice.currency, at=now, order_no=invoice.order_no, invoice_no=invoice_no, reference=number, by=by,
    )  # fmt: skip
    # What was written off of it is no longer lost but credited: that part of the write-off is reversed (so a
    # credit note after a write-off does not leave the customer money they never paid).
    written_off = -(
        session.exec(
            select(func.sum(col(LedgerEntry.amount), type_=MoneyCents())).where(
                LedgerEntry.invoice_no == invoice_no, LedgerEntry.kind == "write_off"
            )
        ).one()
        or ZERO
    )
    if written_off > 0:
        book(
            session, key=f"write_off:{invoice_no}:reversed:{number}", customer_id=invoice.customer_id,
            kind="write_off", amount=min(written_off, gross), currency=invoice.currency, at=now,
            order_no=invoice.order_no, invoice_no=invoice_no, reference=f"reversed by {number}", by=by,
        )  # fmt: skip
    return note


def write_off(session: Session, invoice_no: str, *, reason: str, by: str, now: datetime) -> Decimal:
    """Write off what `invoice_no` leaves open (a debt the customer will not pay): one ledger entry against it,
    once per invoice. Returns the amount written off; CommandError when nothing is open or no reason is given."""
    reason = reason.strip()
    if not reason:
        raise CommandError("say why the invoice is written off")
    invoice = session.get(Invoice, invoice_no)
    if invoice is None or invoice.kind != "invoice":
        raise CommandError(f"no invoice {invoice_no} to write off")
    left = invoice.total + settled(session, [invoice_no]).get(invoice_no, ZERO)
    if left <= 0:
        raise CommandError(f"invoice {invoice_no} leaves nothing open to write off")
    book(
        session, key=f"write_off:{invoice_no}", customer_id=invoice.customer_id, kind="write_off", amount=-left,
        currency=invoice.currency, at=now, order_no=invoice.order_no, invoice_no=invoice_no,
        reference=reason[:200], by=by,
    )  # fmt: skip
    return left


@dataclass(frozen=True)
class Credited:
    """What credit notes took back of one invoice line so far (positive amounts)."""

    units: int = 0
    net: Decimal = ZERO
    tax: Decimal = ZERO
    gross: Decimal = ZERO


def credited_lines(session: Session, invoice_no: str) -> dict[int, Credited]:
    """Invoice line position → what its credit notes took back (each credit note line names its invoice line)."""
    notes = select(Invoice.invoice_no).where(Invoice.kind == "credit_note", Invoice.corrects == invoice_no)
    back: dict[int, Credited] = {}
    for line in session.exec(select(InvoiceLine).where(col(InvoiceLine.invoice_no).in_(notes))):
        if line.corrects_line is None:
            continue
        was = back.get(line.corrects_line, Credited())
        back[line.corrects_line] = Credited(
            was.units - line.qty, was.net - line.net, was.tax - line.tax, was.gross - line.gross
        )
    return back


def _credit_amounts(line: InvoiceLine, qty: int, taken: Credited) -> LineAmounts:
    """`qty` units of `line` back. The tax rule of domain/billing.py per credit, held within what the line has left
    to give back: a line credited in parts never returns more tax or net than it charged, and the part that
    completes it returns exactly the rest (so the invoice and its credit notes net to zero, cent for cent)."""
    rate = Decimal(line.tax_rate_bp) / BASIS_POINTS
    tax_left, net_left = line.tax - taken.tax, line.net - taken.net
    if qty == line.qty - taken.units:  # the rest of the line
        return LineAmounts(line.sku, qty, line.unit_price, rate, net_left, tax_left, line.gross - taken.gross)
    try:
        a = line_amounts(line.sku, qty, line.unit_price, rate)
    except BillingError as exc:
        raise CommandError(str(exc)) from None
    tax = max(min(a.tax, tax_left), a.gross - net_left)
    return LineAmounts(line.sku, qty, line.unit_price, rate, a.gross - tax, tax, a.gross)
