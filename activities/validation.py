"""Business validation against master data (products, price list, customers): services/order_checks.py."""

from __future__ import annotations

from temporalio import activity

from activities.base import DbActivities
from models.contracts import FulfillmentInput, ValidationOutcome
from services.order_checks import rejection_reasons
from workflows.steps import ValidationSteps


class ValidationActivities(DbActivities, ValidationSteps):
    @activity.defn
    def validate_order(self, inp: FulfillmentInput) -> ValidationOutcome:
        order = inp.order
        with self.reading(order.order_no) as session:
            reasons, customer = rejection_reasons(session, order, self.settings.price_tolerance)
        if reasons:
            self.log.info("order rejected", reasons=reasons)
        return ValidationOutcome(reasons=reasons, customer_new=bool(customer and customer.first_order))
