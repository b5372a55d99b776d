"""The worker's check of approvers' decisions: a workflow interceptor that verifies the API's signature in
the `decide` update's validator path, before OrderFulfillment's own validator (roles, sales rep, level).

A refused update never reaches the workflow history, so the workflow cannot audit it; the interceptor hands
each refusal to `audit_refusals`, a task of the worker that writes it to the approvals table (keyed on the
update id, so a validator run twice for one update is audited once)."""

from __future__ import annotations

import asyncio
import dataclasses
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from core.db import unit_of_work
from domain.decision_signing import signature_problem
from models.contracts import DecisionInput
from models.tables import ApprovalRecord, SalesOrder, utcnow
from models.text import strip_unstorable

DECIDE_UPDATE = "decide"
UNSIGNED = "UnsignedDecision"  # the ApplicationError type callers see
log = structlog.get_logger("decision_guard")


MAX_AUDIT_ATTEMPTS = 50  # ~10 s of retries at the drain interval


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
                if input.update == DECIDE_UPDATE and input.args and isinstance(input.args[0], DecisionInput):
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
        )
        if why:
            self.refusals.put(Refusal(update_id, workflow_id, decision, why))
            raise ApplicationError(why, type=UNSIGNED, non_retryable=True)

    @asynccontextmanager
    async def auditing(self, engine: Engine, interval: float = 0.2) -> AsyncIterator[None]:
        """Write refusals to the audit trail while the block runs (and whatever is left when it ends)."""

        async def drain_forever() -> None:
            while True:
                if not self.refusals.empty():  # refusals are rare: no thread hop while there are none
                    await asyncio.to_thread(self.drain, engine)
                await asyncio.sleep(interval)

        task = asyncio.create_task(drain_forever())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(self.drain, engine)

    def drain(self, engine: Engine) -> int:
        written = 0
        retry: list[Refusal] = []
        while True:
            try:
                refusal = self.refusals.get_nowait()
            except queue.Empty:
                break
            try:
                written += audit_refusal(engine, refusal)
            except OperationalError:  # e.g. the database is busy or away: keep it for the next round
                if refusal.attempts < MAX_AUDIT_ATTEMPTS:
                    retry.append(dataclasses.replace(refusal, attempts=refusal.attempts + 1))
                else:
                    log.exception("could not audit a refused decision", workflow_id=refusal.workflow_id)
            except Exception:  # the audit must not stop the worker; the refusal itself already happened
                log.exception("could not audit a refused decision", workflow_id=refusal.workflow_id)
        for refusal in retry:
            self.refusals.put(refusal)
        return written


def audit_refusal(engine: Engine, refusal: Refusal) -> int:
    decision = refusal.decision
    order_no = refusal.workflow_id.removeprefix("order-")
    log.warning("decision refused", order_no=order_no, by=decision.by, role=decision.role, reason=refusal.reason)
    return audit_refused_decision(
        engine,
        order_no,
        level=decision.level,
        role=decision.role,  # as claimed by the sender: unverified
        by=decision.by,
        decision=decision.decision,
        comment=decision.comment,
        why=refusal.reason,
        key=f"refused:{refusal.workflow_id}:{refusal.update_id}",
    )


def audit_refused_decision(
    engine: Engine,
    order_no: str,
    *,
    level: int,
    role: str,
    by: str,
    decision: str,
    comment: str,
    why: str,
    key: str | None = None,
) -> int:
    """An audit row for a refused decision; 1 when written. Only for orders we know (unknown ones have no
    trail); `key` makes a repeat a no-op. Whatever the sender claimed is made to fit the columns."""
    key = strip_unstorable(key)[:200] if key else None
    with unit_of_work(engine) as session:
        if session.get(SalesOrder, order_no) is None:
            return 0
        if key and session.exec(select(ApprovalRecord.id).where(ApprovalRecord.key == key)).first() is not None:
            return 0
        session.add(
            ApprovalRecord(
                key=key,
                order_no=order_no,
                level=min(max(level, 0), 2**31 - 1),
                role=strip_unstorable(role)[:32],
                by=strip_unstorable(by)[:64],
                decision=strip_unstorable(decision)[:16],
                at=utcnow(),
                comment=strip_unstorable(comment)[:2000],
                accepted=False,
                refusal_reason=strip_unstorable(why)[:500],
            )
        )
    return 1
