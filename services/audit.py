"""The audit trail of refused decisions: one writer for the API, the CLI path and the worker's DecisionGuard.

Accepted decisions are written by the order workflow (activities/records.py `record_approval`); a refused one never
reaches the workflow's history, so whoever saw the refusal writes it here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from core.db import unit_of_work
from models.tables import ApprovalRecord, SalesOrder, utcnow
from models.text import strip_unstorable
from workflows.contract import order_no_of, refund_order_no_of
from workflows.decision_guard import Refusal

log = structlog.get_logger("audit")

MAX_AUDIT_ATTEMPTS = 50  # ~10 s of retries at the drain interval


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
    on_behalf_of: str = "",
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
                on_behalf_of=strip_unstorable(on_behalf_of)[:64] or None,
            )
        )
    return 1


def audit_refusal(engine: Engine, refusal: Refusal) -> int:
    """A refusal of the worker's DecisionGuard (a decision sent around the API), keyed on its update id."""
    decision = refusal.decision
    refund_of = refund_order_no_of(refusal.workflow_id)  # a decision on an order's refund, audited on the order
    order_no = order_no_of(refusal.workflow_id) or refund_of
    log.warning("decision refused", order_no=order_no, by=decision.by, role=decision.role, reason=refusal.reason)
    if order_no is None:
        return 0
    why = f"refund decision: {refusal.reason}" if refund_of else refusal.reason
    return audit_refused_decision(
        engine,
        order_no,
        level=decision.level,
        role=decision.role,  # as claimed by the sender: unverified
        by=decision.by,
        decision=decision.decision,
        comment=decision.comment,
        why=why,
        key=f"refused:{refusal.workflow_id}:{refusal.update_id}",
        on_behalf_of=decision.on_behalf_of,
    )


def drain(refusals: queue.SimpleQueue[Refusal], engine: Engine) -> int:
    """Write every waiting refusal; one the database cannot take now (busy, away) waits for the next round."""
    written = 0
    retry: list[Refusal] = []
    while True:
        try:
            refusal = refusals.get_nowait()
        except queue.Empty:
            break
        try:
            written += audit_refusal(engine, refusal)
        except OperationalError:
            if refusal.attempts < MAX_AUDIT_ATTEMPTS:
                retry.append(dataclasses.replace(refusal, attempts=refusal.attempts + 1))
            else:
                log.exception("could not audit a refused decision", workflow_id=refusal.workflow_id)
        except Exception:  # the audit must not stop the worker; the refusal itself already happened
            log.exception("could not audit a refused decision", workflow_id=refusal.workflow_id)
    for refusal in retry:
        refusals.put(refusal)
    return written


@asynccontextmanager
async def auditing(refusals: queue.SimpleQueue[Refusal], engine: Engine, interval: float = 0.2) -> AsyncIterator[None]:
    """Write the guard's refusals to the audit trail while the block runs (and whatever is left when it ends)."""

    async def drain_forever() -> None:
        while True:
            if not refusals.empty():  # refusals are rare: no thread hop while there are none
                await asyncio.to_thread(drain, refusals, engine)
            await asyncio.sleep(interval)

    task = asyncio.create_task(drain_forever())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(drain, refusals, engine)
