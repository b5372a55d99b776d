"""Business validation against master data (products, price list, customers)."""

from __future__ import annotations

from sqlmodel import col, select
from temporalio import activity

from activities.base import DbActivities
from domain.validation import ProductFacts, validate_order
from models.contracts import FulfillmentInput, ValidationOutcome
from models.tables import Customer, Product
from workflows.steps import ValidationSteps


class ValidationActivities(DbActivities, ValidationSteps):
    @activity.defn
    def validate_order(self, inp: FulfillmentInput) -> ValidationOutcome:
        order = inp.order
        with self.transaction(order.order_no) as session:
            skus = {line.sku for line in order.lines}
            products = {
                product.sku: ProductFacts(product.sku, product.unit_price, product.active)
                for product in session.exec(select(Product).where(col(Product.sku).in_(skus)))
            }
            customer = session.get(Customer, order.customer_id)
        reasons = validate_order(order, products, customer is not None, self.settings.price_tolerance)
        if reasons:
            self.log.info("order rejected", reasons=reasons)
        return ValidationOutcome(reasons=reasons, customer_new=bool(customer and customer.first_order))
