"""Credit exposure (services/queries/exposure.py: receivables + this customer's other open orders) plus this order,
against the limit (domain/credit.py)."""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from domain.credit import check_credit
from models.contracts import CreditInput, CreditOutcome
from models.tables import Customer
from services.queries.exposure import open_order_totals
from workflows.contract import ErrorType
from workflows.steps import CreditSteps


class CreditActivities(DbActivities, CreditSteps):
    @activity.defn
    def check_credit(self, inp: CreditInput) -> CreditOutcome:
        with self.reading(inp.order_no) as session:
            customer = session.get(Customer, inp.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"unknown customer {inp.customer_id}", type=ErrorType.UNKNOWN_CUSTOMER, non_retryable=True
                )
            others = open_order_totals(session, [inp.customer_id], excluding_order=inp.order_no)
        open_orders = others.get(inp.customer_id, Decimal("0.00"))
        result = check_credit(customer.credit_limit, customer.receivables, open_orders, inp.total, prepaid=False)
        self.log.info("credit checked", exposure=str(result.exposure), limit=str(result.limit), hold=result.hold)
        return CreditOutcome(hold=result.hold, limit=result.limit, exposure=result.exposure)
