"""The business validation of an order against master data (products, price list, customers): the one definition
the workflow's validation step applies, and the console's order form checks before it submits."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import Session, col, select

from domain.validation import LineFacts, OrderFacts, ProductFacts, validate_order
from models.order import Order
from models.tables import Customer, Product


def facts_of(order: Order) -> OrderFacts:
    """The canonical order as the plain facts validation decides on."""
    return OrderFacts(
        customer_id=order.customer_id,
        ship_to=order.ship_to.model_dump(),
        lines=[LineFacts(line.sku, line.unit_price) for line in order.lines],
    )


def rejection_reasons(session: Session, order: Order, price_tolerance: Decimal) -> tuple[list[str], Customer | None]:
    """Why the order would be rejected (empty: it may go on), and its customer (None: unknown)."""
    skus = {line.sku for line in order.lines}
    products = {
        product.sku: ProductFacts(product.sku, product.unit_price, product.active)
        for product in session.exec(select(Product).where(col(Product.sku).in_(skus)))
    }
    customer = session.get(Customer, order.customer_id)
    return validate_order(facts_of(order), products, customer is not None, price_tolerance), customer
