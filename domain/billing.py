"""Invoice arithmetic, defined once: tax out of tax-inclusive prices, invoice numbers, due dates, ageing.

The rounding rule: order prices include tax (the order total is what the customer pays, so an invoice's total equals
what its lines were sold for). Per line, gross = qty × unit price (exact in cents); tax = gross × rate / (1 + rate),
rounded half-up to the cent; net = gross − tax. An invoice's net, tax and total are the sums of its lines, never
rounded again, so the lines always add up to the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

CENTS = Decimal("0.01")
ZERO = Decimal("0.00")
# Days overdue → bucket, as finance reads an ageing report: not yet due, then 30-day bands.
AGEING_BUCKETS = ("current", "1-30", "31-60", "61-90", "over 90")


class BillingError(ValueError):
    """An invoice that cannot be made as asked (a negative quantity, a rate outside 0..1, no lines)."""


@dataclass(frozen=True)
class LineAmounts:
    sku: str
    qty: int
    unit_price: Decimal  # tax included
    tax_rate: Decimal
    net: Decimal
    tax: Decimal
    gross: Decimal


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal


def line_amounts(sku: str, qty: int, unit_price: Decimal, tax_rate: Decimal) -> LineAmounts:
    """One line's net, tax and gross by the rule above."""
    if qty <= 0:
        raise BillingError(f"{sku}: quantity {qty} is not positive")
    if unit_price < 0:
        raise BillingError(f"{sku}: unit price {unit_price} is negative")
    if not ZERO <= tax_rate < 1:
        raise BillingError(f"{sku}: tax rate {tax_rate} is not between 0 and 1")
    gross = (unit_price * qty).quantize(CENTS)
    tax = (gross * tax_rate / (1 + tax_rate)).quantize(CENTS, rounding=ROUND_HALF_UP)
    return LineAmounts(sku, qty, unit_price, tax_rate, gross - tax, tax, gross)


def totals(lines: Sequence[LineAmounts]) -> Totals:
    if not lines:
        raise BillingError("an invoice needs at least one line")
    return Totals(
        net=sum((line.net for line in lines), ZERO),
        tax=sum((line.tax for line in lines), ZERO),
        gross=sum((line.gross for line in lines), ZERO),
    )


def invoice_number(entity: str, year: int, seq: int) -> str:
    """The number printed on the invoice: entity, year and the series' sequence, e.g. OF-2026-000042."""
    return f"{entity}-{year}-{seq:06d}"


def due_date(issued_at: datetime, terms_days: int) -> datetime:
    """Payment terms in days from the issue (0: due on issue)."""
    if terms_days < 0:
        raise BillingError(f"payment terms of {terms_days} days")
    return issued_at + timedelta(days=terms_days)


def days_overdue(due_at: datetime, as_of: datetime) -> int:
    """Whole calendar days (UTC) past the due date; 0 or less while it is not overdue."""
    return (as_of.date() - due_at.date()).days


def ageing_bucket(due_at: datetime, as_of: datetime) -> str:
    days = days_overdue(due_at, as_of)
    if days <= 0:
        return AGEING_BUCKETS[0]
    if days <= 30:
        return AGEING_BUCKETS[1]
    if days <= 60:
        return AGEING_BUCKETS[2]
    if days <= 90:
        return AGEING_BUCKETS[3]
    return AGEING_BUCKETS[4]


INVOICE_POINTS = ("dispatch", "delivery", "approval")  # when an order (or parcel) is invoiced
INVOICE_UNITS = ("parcel", "order")  # one invoice per parcel, or one for the whole order


@dataclass(frozen=True)
class InvoiceTiming:
    """When invoices are issued and what each bills, written `point/per` (e.g. `dispatch/parcel`, the default;
    `delivery/order`; `approval/order`). An approved order has no parcels yet, so approval bills per order."""

    point: str = "dispatch"
    per: str = "parcel"

    @classmethod
    def parse(cls, text: str) -> InvoiceTiming:
        point, _, per = text.strip().partition("/")
        per = per or ("order" if point == "approval" else "parcel")
        if point not in INVOICE_POINTS or per not in INVOICE_UNITS:
            raise BillingError(
                f"invoice policy {text!r}: write point/per, point one of {', '.join(INVOICE_POINTS)}, "
                f"per one of {', '.join(INVOICE_UNITS)} (e.g. dispatch/parcel)"
            )
        if point == "approval" and per == "parcel":
            raise BillingError("invoice policy approval/parcel: an order has no parcels when it is approved")
        return cls(point, per)

    def __str__(self) -> str:
        return f"{self.point}/{self.per}"


def invoice_timing(customer: str | None, channel: str, by_channel: dict[str, str], default: str) -> InvoiceTiming:
    """The policy an order is invoiced by: its customer's, else its channel's, else the business's."""
    return InvoiceTiming.parse(customer or by_channel.get(channel) or default)


@dataclass(frozen=True)
class Settled:
    """What an order's ledger entries say of its money (payments, credit notes, write-offs as positive amounts)."""

    invoiced: Decimal = ZERO
    paid: Decimal = ZERO
    credited: Decimal = ZERO
    written_off: Decimal = ZERO
    refunded: Decimal = ZERO


def settlement(total: Decimal, money: Settled) -> str:
    """The order's money in a word. Credit notes lower what the order is due (total − credited); a refund or a
    write-off says so whatever else happened; an order credited in full and never paid is `credited`."""
    if money.refunded > 0:
        return "refunded"
    if money.written_off > 0:
        return "written off"
    due = total - money.credited
    if money.invoiced > 0 and due <= 0:
        return "credited"
    if due > 0 and money.paid >= due:
        return "paid"
    if money.paid > 0:
        return "partially paid"
    if money.invoiced > 0:
        return "unpaid"
    return "not invoiced"


def refund_needs_approval(amount: Decimal, approval_over: Decimal) -> bool:
    """A refund above the policy amount waits for a signed finance decision; at or under it, it is paid out."""
    return amount > approval_over
