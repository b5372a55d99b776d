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


def settlement(total: Decimal, invoiced: Decimal, settled: Decimal, refunded: Decimal) -> str:
    """The order's money in a word: `settled` = payments + credit notes against it, `refunded` = paid back."""
    if refunded > 0:
        return "refunded"
    if total > 0 and settled >= total:
        return "paid"
    if settled > 0:
        return "partially paid"
    if invoiced > 0:
        return "unpaid"
    return "not invoiced"
