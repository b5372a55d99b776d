"""Credit arithmetic: would this order push the customer's exposure over the limit?"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CreditCheck:
    limit: Decimal
    exposure: Decimal  # receivables + open orders + this order
    hold: bool

    @property
    def headroom(self) -> Decimal:
        return self.limit - self.exposure


def exposure(receivables: Decimal, open_orders: Decimal, order_total: Decimal = Decimal("0.00")) -> Decimal:
    """What the customer owes or will owe: receivables + their open orders (+ the order being checked)."""
    return receivables + open_orders + order_total


def check_credit(
    limit: Decimal, receivables: Decimal, open_orders: Decimal, order_total: Decimal, *, prepaid: bool
) -> CreditCheck:
    """Prepaid orders carry no credit risk; others are held (never silently rejected) when over limit."""
    owed = exposure(receivables, open_orders, order_total)
    if prepaid:
        return CreditCheck(limit, owed, hold=False)
    return CreditCheck(limit, owed, hold=owed > limit)
