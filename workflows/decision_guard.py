"""The worker's check of approvers' decisions: a workflow interceptor that verifies the API's signature in the
`decide` update's validator path, before OrderFulfillment's own validator (roles, sales rep, level).

A refused update never reaches the workflow history, so the workflow cannot audit it; the interceptor puts each
refusal on `refusals`, which the worker drains into the audit trail (services/audit.py `auditing`). Deterministic
and free of I/O: it runs inside workflow tasks (never on replay, like every validator)."""

from __future__ import annotations

import queue
from dataclasses import dataclass

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.decision_signing import signature_problem
from models.contracts import DecisionInput
from workflows.contract import ErrorType, Update


@dataclass(frozen=True)
class Refusal:
    update_id: str
    workflow_id: str
    decision: DecisionInput
    reason: str
    attempts: int = 0


class DecisionGuard(Interceptor):
    def __init__(self, secret: str) -> None:
        self._secret = secret
        # Filled from workflow threads, drained by the worker's event loop.
        self.refusals: queue.SimpleQueue[Refusal] = queue.SimpleQueue()

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        guard = self

        class _CheckDecisionSignature(WorkflowInboundInterceptor):
            def handle_update_validator(self, input: HandleUpdateInput) -> None:
                if input.update == Update.DECIDE and input.args and isinstance(input.args[0], DecisionInput):
                    guard.check(input.id, workflow.info().workflow_id, input.args[0])
                super().handle_update_validator(input)

        return _CheckDecisionSignature

    def check(self, update_id: str, workflow_id: str, decision: DecisionInput) -> None:
        why = signature_problem(
            self._secret,
            decision.signature,
            workflow_id=workflow_id,
            level=decision.level,
            decision=decision.decision,
            by=decision.by,
            role=decision.role,
            comment=decision.comment,
            on_behalf_of=decision.on_behalf_of,
        )
        if why:
            self.refusals.put(Refusal(update_id, workflow_id, decision, why))
            raise ApplicationError(why, type=ErrorType.UNSIGNED_DECISION, non_retryable=True)
