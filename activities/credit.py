"""Credit exposure (services/billing/ledger.py: the ledger's receivables + what this customer's other open orders will
still bill) plus this order, against the limit (domain/credit.py)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from domain.credit import check_credit
from models.contracts import CreditInput, CreditOutcome
from models.tables import Customer
from services.billing.ledger import CreditPosition, credit_positions
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
            found = credit_positions(session, [inp.customer_id], excluding_order=inp.order_no)
        position = found.get(inp.customer_id, CreditPosition())
        result = check_credit(customer.credit_limit, position.receivables, position.to_bill, inp.total, prepaid=False)
        self.log.info("credit checked", exposure=str(result.exposure), limit=str(result.limit), hold=result.hold)
        return CreditOutcome(hold=result.hold, limit=result.limit, exposure=result.exposure)
