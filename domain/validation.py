"""Business validation of an order against master data: every reason it cannot be accepted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ProductFacts:
    sku: str
    unit_price: Decimal
    active: bool


@dataclass(frozen=True)
class LineFacts:
    sku: str
    unit_price: Decimal


@dataclass(frozen=True)
class OrderFacts:
    """What validation looks at: plain data, whichever wire shape the order came in."""

    customer_id: str
    ship_to: Mapping[str, str]  # the ship-to address's fields by name
    lines: Sequence[LineFacts]


REQUIRED_ADDRESS_FIELDS = ("name", "phone", "region", "province", "city", "address")


def validate_order(
    order: OrderFacts, products: Mapping[str, ProductFacts], customer_known: bool, price_tolerance: Decimal
) -> list[str]:
    """Return the reasons to reject the order; an empty list means it may go on."""
    reasons: list[str] = []
    if not customer_known:
        reasons.append(f"unknown customer {order.customer_id}")
    missing = [name for name in REQUIRED_ADDRESS_FIELDS if not order.ship_to.get(name)]
    if missing:
        reasons.append("ship-to address incomplete: missing " + ", ".join(missing))
    seen: set[str] = set()
    for index, line in enumerate(order.lines, start=1):
        product = products.get(line.sku)
        if product is None:
            reasons.append(f"line {index}: unknown SKU {line.sku}")
            continue
        if not product.active:
            reasons.append(f"line {index}: SKU {line.sku} is not active")
        if line.sku in seen:
            reasons.append(f"line {index}: SKU {line.sku} appears on more than one line")
        seen.add(line.sku)
        if not price_within_policy(line.unit_price, product.unit_price, price_tolerance):
            reasons.append(
                f"line {index}: unit price {line.unit_price} for {line.sku} is outside "
                f"{price_tolerance:%} of list price {product.unit_price}"
            )
    return reasons


def price_within_policy(price: Decimal, list_price: Decimal, tolerance: Decimal) -> bool:
    """A line price may deviate from the price list by at most `tolerance` (a fraction) either way."""
    return abs(price - list_price) <= list_price * tolerance
