"""Credit exposure: receivables + this customer's other open orders + this order, against the limit."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from domain.credit import check_credit
from models.contracts import CreditInput, CreditOutcome
from models.order import PaymentMethod
from models.status import NEVER_BILLED
from models.tables import Customer, SalesOrder


class CreditActivities(DbActivities):
    @activity.defn
    def check_credit(self, inp: CreditInput) -> CreditOutcome:
        with self.transaction(inp.order_no) as session:
            customer = session.get(Customer, inp.customer_id)
            if customer is None:
                raise ApplicationError(
                    f"unknown customer {inp.customer_id}", type="UnknownCustomer", non_retryable=True
                )
            others = session.exec(
                select(col(SalesOrder.total)).where(
                    SalesOrder.customer_id == inp.customer_id,
                    SalesOrder.order_no != inp.order_no,
                    col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]),
                    SalesOrder.payment_method != PaymentMethod.PREPAID.value,
                    col(SalesOrder.paid).is_(False),
                )
            ).all()
        open_orders = sum(others, Decimal("0.00"))
        result = check_credit(customer.credit_limit, customer.receivables, open_orders, inp.total, prepaid=False)
        self.log.info("credit checked", exposure=str(result.exposure), limit=str(result.limit), hold=result.hold)
        return CreditOutcome(hold=result.hold, limit=result.limit, exposure=result.exposure)
