"""Review rules from the rules file, plus the worker's timing policy for this order."""

from __future__ import annotations

from functools import cached_property

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import DbActivities
from core.logging import bind_activity
from integrations.carriers.registry import BATCH_CARRIERS, KNOWN_CARRIERS, push_callbacks
from models.contracts import Policy, ReviewInput, ReviewOutcome
from rules.engine import OrderFacts, RuleError, RuleSet, load_rules, review
from workflows.contract import ErrorType
from workflows.steps import ReviewSteps


class ReviewActivities(DbActivities, ReviewSteps):
    @cached_property
    def rules(self) -> RuleSet:
        return load_rules(self.settings.rules_file)

    @cached_property
    def policy(self) -> Policy:
        """The settings' policy as each order workflow gets it, with what this worker knows about carriers."""
        return self.settings.policy.workflow_policy(
            carriers=KNOWN_CARRIERS,
            batch_capable=BATCH_CARRIERS,
            push_callbacks=push_callbacks(self.settings.public_api_url),
        )

    @activity.defn
    def review_order(self, inp: ReviewInput) -> ReviewOutcome:
        order = inp.order
        bind_activity(order.order_no, "review_order", activity.info().workflow_id or "")
        facts = OrderFacts(
            total=order.total,
            currency=order.currency,
            order_type=order.order_type.value,
            payment_method=order.payment.method.value,
            paid=order.payment.paid,
            customer_new=inp.customer_new,
            channel=order.channel,
            line_count=len(order.lines),
        )
        try:
            outcome = review(self.rules, facts)
        except RuleError as exc:
            # A broken rules file is an operator's fix, not the order's fault: keep retrying until fixed.
            raise ApplicationError(str(exc), type=ErrorType.RULE_ERROR) from exc
        self.log.info("reviewed", fired=outcome.fired, approvals=[r.value for r in outcome.approval_roles])
        return ReviewOutcome(
            approval_roles=list(outcome.approval_roles),
            prepay_required=outcome.prepay_required,
            skip_finance=outcome.skip_finance,
            fired=list(outcome.fired),
            policy=self.policy,
            allocation=outcome.allocation,
            lot_order=outcome.lot_order,
        )
