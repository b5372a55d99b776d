"""Bank statement import: the file checked whole, each new line matched (domain/bank_matching.py) and, when it
matches, booked as a payment against its order's invoices (payments.py) — in one transaction.

The file is CSV with a header naming at least `date,amount,payer,reference` (in any order; `bank_ref`, the bank's
own transaction id, optional; other columns ignored): dates YYYY-MM-DD, amounts positive with at most two decimals
(credits only: export the statement's incoming side), payer and reference free text up to 200 characters.
A file with one malformed line is refused whole, naming the line and the reason, and changes nothing. Each line is
keyed on `bank_ref`, or on its content and how many times that content occurred before it in the file: importing
the same file (or a later statement that repeats a line) books nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, insert, update
from sqlmodel import Session, col, select

from domain.bank_matching import OpenBook, OpenItem, reference_tokens
from domain.billing import CENTS, ZERO
from models.tables import BankLine, Customer, Invoice, LedgerEntry, SalesOrder
from services.billing.payments import payment_key, record_payment, settled
from services.errors import CommandError, NotFound

REQUIRED = ("date", "amount", "payer", "reference")
TEXT_MAX = 200
BANK_REF_MAX = 100  # `bank:REF` is the line's key and the payment's reference (payments.REFERENCE_MAX)


class StatementError(CommandError):
    """The file cannot be imported as it is: which line, and why."""


@dataclass(frozen=True)
class StatementLine:
    line_no: int
    booked_on: date
    amount: Decimal
    payer: str
    reference: str
    key: str


@dataclass
class Imported:
    lines: int = 0
    already: int = 0  # imported before: left alone
    matched: int = 0
    to_match: int = 0
    matched_amount: Decimal = ZERO
    queue: list[int] = field(default_factory=list)  # the ids of the lines left to match
    paid_by: set[str] = field(default_factory=set)  # the customers whose invoices the file paid


def parse_statement(text: str) -> list[StatementLine]:
    """Every line checked; StatementError names the first bad one (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise StatementError(f"line 1: the header must name {', '.join(REQUIRED)} (missing: {', '.join(missing)})")
    reader.fieldnames = header
    seen: Counter[str] = Counter()
    lines: list[StatementLine] = []
    for row in reader:
        number = reader.line_num
        if None in row:
            raise StatementError(f"line {number}: more fields than the header names")
        values = {name: (row.get(name) or "").strip() for name in [*REQUIRED, "bank_ref"]}
        try:
            booked_on = date.fromisoformat(values["date"])
        except ValueError:
            raise StatementError(f"line {number}: date {values['date']!r} is not YYYY-MM-DD") from None
        try:
            amount = Decimal(values["amount"])
        except InvalidOperation:
            raise StatementError(f"line {number}: amount {values['amount']!r} is not a number") from None
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENTS):
            raise StatementError(f"line {number}: amount {values['amount']} is not a positive amount in cents")
        for name, most in (("payer", TEXT_MAX), ("reference", TEXT_MAX), ("bank_ref", BANK_REF_MAX)):
            if len(values[name]) > most:
                raise StatementError(f"line {number}: {name} is longer than {most} characters")
        if values["bank_ref"]:
            key = f"bank:{values['bank_ref']}"
        else:
            content = "|".join([booked_on.isoformat(), str(amount), values["payer"], values["reference"]])
            seen[content] += 1
            key = f"bank:{hashlib.sha256(content.encode()).hexdigest()[:40]}:{seen[content]}"
        lines.append(StatementLine(number, booked_on, amount, values["payer"], values["reference"], key))
    return lines


def import_statement(session: Session, text: str, *, file: str, by: str, now: datetime) -> Imported:
    """In the caller's unit of work: the new lines stored, the matching ones booked as payments."""
    lines = parse_statement(text)
    result = Imported(lines=len(lines))
    keys = [line.key for line in lines]
    known = set(session.exec(select(BankLine.key).where(col(BankLine.key).in_(keys)))) if keys else set()
    fresh = [line for line in lines if line.key not in known]
    result.already = len(lines) - len(fresh)
    items, orders, owners, shared = _candidates(session, fresh)
    book = OpenBook(items.values(), shared)
    rows: list[BankLine] = []
    entries: list[dict[str, Any]] = []
    for line in fresh:
        found = book.match(line.amount, line.payer, line.reference, orders)
        row = BankLine(
            key=line.key, booked_on=line.booked_on, amount=line.amount, payer=line.payer, reference=line.reference,
            state="to_match", why=found.why[:500], file=file[:200], line_no=line.line_no, imported_at=now,
            imported_by=by,
        )  # fmt: skip
        if found.order_no is not None:
            # A match is exact: each invoice it pays gets what it leaves open, as record_payment would book it (the
            # same keys), here in one INSERT for the file. The line's key is fresh, so none of these exists yet.
            for item in book.settle(found):  # ... and what it paid is no longer open for the next line
                customer_id, currency = owners[item.invoice_no]
                result.paid_by.add(customer_id)
                entries.append(
                    {"key": payment_key(line.key, item.invoice_no), "customer_id": customer_id, "kind": "payment",
                     "amount": -item.open, "currency": currency, "order_no": item.order_no,
                     "invoice_no": item.invoice_no, "reference": line.key, "at": now, "by": by[:64]}
                )  # fmt: skip
            row.state, row.order_no, row.matched_by = "matched", found.order_no, "auto"
            result.matched += 1
            result.matched_amount += line.amount
        else:
            result.to_match += 1
        rows.append(row)
    if entries:
        session.execute(insert(LedgerEntry), entries)
    session.add_all(rows)
    session.flush()
    result.queue = [row.id for row in rows if row.state == "to_match" and row.id is not None]
    return result


def match_by_hand(session: Session, line_id: int, order_no: str, *, by: str, now: datetime) -> BankLine:
    """Finance puts a queued line against an order: booked as its payment (excess kept unapplied)."""
    taken = session.exec(
        update(BankLine)
        .where(col(BankLine.id) == line_id, col(BankLine.state) == "to_match")
        .values(state="matched", order_no=order_no, matched_by=by[:64], why=f"matched by {by}"[:500])
    )
    line = session.get(BankLine, line_id)
    if line is None:
        raise NotFound(f"no bank line {line_id}")
    if taken.rowcount != 1:  # matched already, or a moment ago by someone else (Postgres: we waited for their row)
        raise CommandError(f"bank line {line_id} is already matched to order {line.order_no}")
    record_payment(session, order_no, reference=line.key, amount=line.amount, by=by, at=now)
    return line


def to_match(session: Session) -> list[BankLine]:
    return list(session.exec(select(BankLine).where(BankLine.state == "to_match").order_by(col(BankLine.id))))


def _candidates(
    session: Session, lines: Collection[StatementLine]
) -> tuple[dict[str, OpenItem], dict[str, str], dict[str, tuple[str, str]], set[str]]:
    """The open invoices these lines could pay — named in a reference, of an order named in one, or of a customer
    named as a payer — the order numbers named, and each invoice's customer and currency: a few queries per 500
    lines."""
    tokens = sorted({token for line in lines for token in reference_tokens(line.reference)})
    payers = sorted({line.payer for line in lines if line.payer})
    orders: dict[str, str] = {}
    for chunk in _chunks(tokens):
        for order_no in session.exec(select(SalesOrder.order_no).where(func.upper(SalesOrder.order_no).in_(chunk))):
            orders[order_no.upper()] = order_no
    payer_ids: list[str] = []
    seen_names: Counter[str] = Counter()
    for chunk in _chunks(payers):
        for customer_id, name in session.exec(
            select(Customer.customer_id, Customer.name).where(col(Customer.name).in_(chunk))
        ).all():
            payer_ids.append(customer_id)
            seen_names[name] += 1
    found: dict[str, Invoice] = {}
    for column, values in (
        (Invoice.invoice_no, tokens), (Invoice.order_no, sorted(orders.values())), (Invoice.customer_id, payer_ids)
    ):  # fmt: skip
        for chunk in _chunks(values):
            for invoice in session.exec(select(Invoice).where(Invoice.kind == "invoice", col(column).in_(chunk))):
                found[invoice.invoice_no] = invoice
    paid: dict[str, Decimal] = {}
    for chunk in _chunks(sorted(found)):
        paid.update(settled(session, chunk))
    names: dict[str, str] = {}
    for chunk in _chunks(sorted({invoice.customer_id for invoice in found.values()})):
        names.update(
            session.exec(select(Customer.customer_id, Customer.name).where(col(Customer.customer_id).in_(chunk))).all()
        )
    items: dict[str, OpenItem] = {}
    for number, invoice in found.items():
        left = invoice.total + paid.get(number, ZERO)
        if left > 0:
            items[number] = OpenItem(number, invoice.order_no, names.get(invoice.customer_id, ""), left)
    owners = {number: (invoice.customer_id, invoice.currency) for number, invoice in found.items()}
    return items, orders, owners, {name for name, count in seen_names.items() if count > 1}


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    """IN lists of at most `size` (SQLite's parameter limit, Postgres's planner)."""
    return [values[i : i + size] for i in range(0, len(values), size)]
