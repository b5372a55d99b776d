"""Business validation against master data (products, price list, customers)."""

from __future__ import annotations

from sqlmodel import col, select
from temporalio import activity

from activities.base import DbActivities
from domain.validation import LineFacts, OrderFacts, ProductFacts, validate_order
from models.contracts import FulfillmentInput, ValidationOutcome
from models.order import Order
from models.tables import Customer, Product
from workflows.steps import ValidationSteps


def facts_of(order: Order) -> OrderFacts:
    """The canonical order as the plain facts validation decides on."""
    return OrderFacts(
        customer_id=order.customer_id,
        ship_to=order.ship_to.model_dump(),
        lines=[LineFacts(line.sku, line.unit_price) for line in order.lines],
    )


class ValidationActivities(DbActivities, ValidationSteps):
    @activity.defn
    def validate_order(self, inp: FulfillmentInput) -> ValidationOutcome:
        order = inp.order
        with self.reading(order.order_no) as session:
            skus = {line.sku for line in order.lines}
            products = {
                product.sku: ProductFacts(product.sku, product.unit_price, product.active)
                for product in session.exec(select(Product).where(col(Product.sku).in_(skus)))
            }
            customer = session.get(Customer, order.customer_id)
        reasons = validate_order(facts_of(order), products, customer is not None, self.settings.price_tolerance)
        if reasons:
            self.log.info("order rejected", reasons=reasons)
        return ValidationOutcome(reasons=reasons, customer_new=bool(customer and customer.first_order))
