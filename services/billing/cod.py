"""The carriers' cash-on-delivery remittance file: what each carrier collected at the door and paid over to us,
booked as the orders' payments (triggers.py `collect_cod`) — in one transaction.

The file is CSV, UTF-8, with a header naming at least `carrier,tracking_no,amount` (in any order; `collected_on`,
YYYY-MM-DD, optional; other columns ignored): one line per parcel, the amount positive with at most two decimals.
A file with one malformed line is refused whole, naming the line (the header is line 1) and the reason, and
changes nothing (bank.py's statements are checked the same way).

Each line is the parcel's collection, reference `COD-<carrier>-<tracking_no>` — the one the parcel's signed receipt
books (triggers.on_parcel_end) — so a parcel collected at delivery, a file imported twice or a parcel named twice
books nothing twice. A line is booked only when it is what the parcel's goods were sold for (`parcel_value`); a line
for an unknown parcel, a parcel whose order is not cash on delivery, one that never reached the customer, one whose
amount is not the parcel's value or not what was booked for it before, books nothing and is listed with why. The
ledger dates what is booked when it is booked (`now`; `collected_on` is the carrier's word, kept on the line): a
past period's reconciliation never changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sqlmodel import Session, col, select

from domain.billing import CENTS, ZERO
from models.order import PaymentMethod
from models.tables import LedgerEntry, SalesOrder, Shipment
from services.billing.bank import StatementError, _chunks
from services.billing.triggers import UNDELIVERED, cod_reference, collect_cod, parcel_value
from services.errors import CommandError

REQUIRED = ("carrier", "tracking_no", "amount")
CARRIER_MAX = 32  # Shipment.carrier
TRACKING_NO_MAX = 64  # Shipment.tracking_no


class RemittanceError(StatementError):
    """The remittance file cannot be imported as it is: which line, and why."""


@dataclass(frozen=True)
class RemittanceLine:
    line_no: int
    carrier: str
    tracking_no: str
    amount: Decimal
    collected_on: date | None = None


@dataclass(frozen=True)
class RemittanceProblem:
    line: int
    tracking_no: str
    why: str


@dataclass
class RemittanceImported:
    lines: int = 0
    booked: int = 0
    booked_amount: Decimal = ZERO
    already_booked: int = 0  # collected before (at delivery, an earlier file, a line above): left alone
    problems: list[RemittanceProblem] = field(default_factory=list)  # booked nothing
    paid_by: set[str] = field(default_factory=set)  # the customers whose orders the file paid


def parse_remittance(text: str) -> list[RemittanceLine]:
    """Every line checked; RemittanceError names the first bad one (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise RemittanceError(f"line 1: the header must name {', '.join(REQUIRED)} (missing: {', '.join(missing)})")
    reader.fieldnames = header
    lines: list[RemittanceLine] = []
    for row in reader:
        number = reader.line_num
        if None in row:
            raise RemittanceError(f"line {number}: more fields than the header names")
        values = {name: (row.get(name) or "").strip() for name in [*REQUIRED, "collected_on"]}
        for name, most in (("carrier", CARRIER_MAX), ("tracking_no", TRACKING_NO_MAX)):
            if not values[name]:
                raise RemittanceError(f"line {number}: no {name}")
            if len(values[name]) > most:
                raise RemittanceError(f"line {number}: {name} is longer than {most} characters")
        try:
            amount = Decimal(values["amount"])
        except InvalidOperation:
            raise RemittanceError(f"line {number}: amount {values['amount']!r} is not a number") from None
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENTS):
            raise RemittanceError(f"line {number}: amount {values['amount']} is not a positive amount in cents")
        collected_on = None
        if values["collected_on"]:
            try:
                collected_on = date.fromisoformat(values["collected_on"])
            except ValueError:
                raise RemittanceError(
                    f"line {number}: collected_on {values['collected_on']!r} is not YYYY-MM-DD"
                ) from None
        lines.append(
            RemittanceLine(
                number, values["carrier"].lower(), values["tracking_no"], amount.quantize(CENTS), collected_on
            )
        )
    return lines


def import_remittance(
    session: Session, lines: Sequence[RemittanceLine], *, by: str, now: datetime
) -> RemittanceImported:
    """In the caller's unit of work: each line's collection booked against its order's open invoices (held unapplied
    when none is open yet), once; the lines that cannot be booked listed with why."""
    result = RemittanceImported(lines=len(lines))
    parcels = _parcels(session, lines)
    orders = _orders(session, {shipment.order_no for shipment in parcels.values()})
    booked = _collections(session, [cod_reference(s.carrier, s.tracking_no) for s in parcels.values()])

    def problem(line: RemittanceLine, why: str) -> None:
        result.problems.append(RemittanceProblem(line.line_no, line.tracking_no, why))

    for line in lines:
        shipment = parcels.get((line.carrier, line.tracking_no))
        if shipment is None:
            problem(line, f"no parcel {line.carrier} {line.tracking_no} was dispatched")
            continue
        order = orders.get(shipment.order_no)
        if order is None:
            problem(line, f"the parcel's order {shipment.order_no} is unknown")
            continue
        if order.payment_method != PaymentMethod.COD.value:
            problem(line, f"order {order.order_no} is not cash on delivery ({order.payment_method})")
            continue
        reference = cod_reference(shipment.carrier, shipment.tracking_no)
        earlier = booked.get(reference)
        if earlier is not None:
            if earlier == line.amount:
                result.already_booked += 1
            else:
                problem(line, f"carrier remitted {line.amount}, its collection was booked as {earlier} before")
            continue
        if shipment.status in UNDELIVERED:
            problem(line, f"carrier remitted {line.amount} for a parcel that is {shipment.status}: nothing collected")
            continue
        value = parcel_value(session, order, shipment.warehouse)
        if value != line.amount:
            problem(line, f"carrier remitted {line.amount}, the parcel's goods are {value}")
            continue
        try:
            now_booked = collect_cod(session, order, shipment, line.amount, by=by, now=now)
        except CommandError as exc:  # booked a moment ago for another amount: it stands
            problem(line, str(exc))
            continue
        booked[reference] = line.amount
        if now_booked > 0:
            result.booked += 1
            result.booked_amount += now_booked
            result.paid_by.add(order.customer_id)
        else:  # booked a moment ago, the same amount
            result.already_booked += 1
    return result


def _parcels(session: Session, lines: Collection[RemittanceLine]) -> dict[tuple[str, str], Shipment]:
    """(carrier, tracking_no) → the shipment, for the parcels the lines name: a query per 500 tracking numbers."""
    wanted = {(line.carrier, line.tracking_no) for line in lines}
    found: dict[tuple[str, str], Shipment] = {}
    for chunk in _chunks(sorted({tracking_no for _, tracking_no in wanted})):
        for shipment in session.exec(select(Shipment).where(col(Shipment.tracking_no).in_(chunk))):
            if (shipment.carrier, shipment.tracking_no) in wanted:
                found[(shipment.carrier, shipment.tracking_no)] = shipment
    return found


def _orders(session: Session, order_nos: Collection[str]) -> dict[str, SalesOrder]:
    found: dict[str, SalesOrder] = {}
    for chunk in _chunks(sorted(order_nos)):
        for order in session.exec(select(SalesOrder).where(col(SalesOrder.order_no).in_(chunk))):
            found[order.order_no] = order
    return found


def _collections(session: Session, references: Collection[str]) -> dict[str, Decimal]:
    """COD reference → the amount its collection booked (whether applied to invoices or held unapplied; the keys
    say which entries are the payment's parts, as payments.py reads them)."""
    booked: dict[str, Decimal] = {}
    for chunk in _chunks(sorted(set(references))):
        for entry in session.exec(
            select(LedgerEntry).where(col(LedgerEntry.reference).in_(chunk), LedgerEntry.kind == "payment")
        ):
            if entry.key.startswith(f"payment:{entry.reference}:"):  # payment_key's form (a prepayment's is not)
                booked[entry.reference] = booked.get(entry.reference, ZERO) - entry.amount
    return booked
