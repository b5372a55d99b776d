"""Refunds of stopped paid orders, in the caller's unit of work: opened by the RefundPayment workflow (what we
hold of the customer's, credit notes first for what was billed and never delivered), decided by finance over the
approval amount, completed with the provider's reference (the ledger's refund entry, the customer told) — or, when
the provider refuses or for runs older than the workflow, recorded by finance by hand. One refund per order.

What we hold for an order = −(the sum of its ledger entries): its prepayment, less what its delivered invoices
kept. A cancelled or rejected order delivered nothing, so its invoices (an `approval/order` policy bills before
dispatch) are credited in full first; a failed order's undelivered parcels were credited when they failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.billing import ZERO, refund_needs_approval
from models.contracts import RefundDecision, RefundOpened, RefundPaid
from models.sqltypes import MoneyCents
from models.status import NoticeKind, OrderStatus, RefundState
from models.tables import LedgerEntry, Refund, SalesOrder
from services.billing.ledger import book
from services.billing.triggers import credit_unshipped
from services.errors import CommandError
from services.notify.writer import NoticeWriter

# Orders that end with the customer's money to pay back, if they paid.
REFUNDABLE = (OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value, OrderStatus.FAILED.value)
NOTHING_DELIVERED = (OrderStatus.CANCELLED.value, OrderStatus.REJECTED.value)


def held(session: Session, order_no: str) -> Decimal:
    """What we hold of the customer's money for the order (0 or more)."""
    total = session.exec(
        select(func.sum(col(LedgerEntry.amount), type_=MoneyCents())).where(LedgerEntry.order_no == order_no)
    ).one()
    return max(-(total or ZERO), ZERO)


def open_refund(
    session: Session, order_no: str, *, reason: str, approval_over: Decimal, now: datetime, zone: tzinfo = UTC
) -> RefundOpened:
    """The order's refund as it stands, opened now if it was not: awaiting approval (over `approval_over`) or
    approved. Nothing held: state `none`, nothing recorded."""
    refund = session.get(Refund, order_no)
    if refund is not None:
        return _opened(session, refund, approval_over)
    order = session.get(SalesOrder, order_no)
    if order is None:
        raise CommandError(f"unknown order {order_no}")
    if order.status in NOTHING_DELIVERED:
        credit_unshipped(session, order, now, zone)
    amount = held(session, order_no)
    if amount <= 0:
        return RefundOpened(state="none", currency=order.currency)
    needs = refund_needs_approval(amount, approval_over)
    refund = Refund(
        order_no=order_no, amount=amount, currency=order.currency, method="provider", reason=reason[:500],
        state=RefundState.AWAITING_APPROVAL if needs else RefundState.APPROVED, requested_at=now,
    )  # fmt: skip
    session.add(refund)
    session.flush()
    return _opened(session, refund, approval_over)


def record_decision(session: Session, decision: RefundDecision, now: datetime) -> None:
    refund = _refund(session, decision.order_no)
    if refund.state != RefundState.AWAITING_APPROVAL:
        return  # recorded before (a retried step)
    refund.state = RefundState.APPROVED if decision.decision == "approve" else RefundState.DECLINED
    refund.decided_by, refund.decided_at = decision.by, now
    refund.why = decision.comment[:500]
    session.add(refund)


def complete_refund(session: Session, paid: RefundPaid, writer: NoticeWriter, now: datetime) -> None:
    """Paid back through the provider: the refund made, its ledger entry, the customer told (each once)."""
    refund = _refund(session, paid.order_no)
    if refund.state == RefundState.MADE:
        return
    refund.state, refund.reference = RefundState.MADE, paid.provider_ref
    refund.made_by, refund.made_at = "payment provider", paid.made_at
    session.add(refund)
    _book_refund(session, refund, by="payment provider", at=paid.made_at)
    writer.write(
        session, key=f"{paid.order_no}:refunded", order_no=paid.order_no, kind=NoticeKind.REFUNDED.value, now=now,
        customer=True, variables={"amount": str(paid.amount), "currency": paid.currency},
    )  # fmt: skip


def fail_refund(session: Session, order_no: str, why: str) -> None:
    refund = _refund(session, order_no)
    if refund.state in (RefundState.MADE, RefundState.FAILED):
        return
    refund.state, refund.why = RefundState.FAILED, why[:500]
    session.add(refund)


def record_refund(session: Session, order_no: str, *, reference: str, by: str, at: datetime) -> Refund:
    """Finance made the refund by hand (the provider refused it, or the order stopped before refunds went through
    the provider): once per order. CommandError when there is nothing to refund or it is made already."""
    order = session.get(SalesOrder, order_no)
    if order is None or order.status not in REFUNDABLE or not order.paid:
        raise CommandError(
            f"order {order_no} has no refund due (only a paid order that was cancelled, rejected or failed)"
        )
    reference = reference.strip()
    if not reference:
        raise CommandError("give the refund's payment reference")
    refund = session.get(Refund, order_no)
    if refund is not None and refund.state == RefundState.MADE:
        raise CommandError(f"the refund of order {order_no} is already recorded")
    if refund is not None and refund.state != RefundState.FAILED:
        state = refund.state.replace("_", " ")
        raise CommandError(f"the refund of order {order_no} is {state}: its workflow pays it, not finance by hand")
    if refund is None:
        if order.status in NOTHING_DELIVERED:
            credit_unshipped(session, order, at, UTC)
        refund = Refund(order_no=order_no, amount=held(session, order_no) or order.total, currency=order.currency,
                        requested_at=at)  # fmt: skip
    refund.state, refund.method, refund.reference = RefundState.MADE, "manual", reference[:200]
    refund.made_by, refund.made_at = by, at
    session.add(refund)
    try:
        session.flush()
    except IntegrityError:  # recorded a moment ago by someone else (Postgres lets both reach the insert)
        raise CommandError(f"the refund of order {order_no} is already recorded") from None
    _book_refund(session, refund, by=by, at=at)
    return refund


def _book_refund(session: Session, refund: Refund, *, by: str, at: datetime) -> None:
    """Paid back: the customer's money no longer stands against anything (their balance returns to what it was).
    The ledger pays back only what it holds: a prepayment recorded before the ledger existed was never booked,
    so its refund is not either (the refund row still says what was paid back)."""
    order = session.get(SalesOrder, refund.order_no)
    assert order is not None  # a refund is only opened for a known order
    amount = min(refund.amount, held(session, refund.order_no))
    if amount <= 0:
        return
    book(
        session, key=f"refund:{refund.order_no}", customer_id=order.customer_id, kind="refund", amount=amount,
        currency=refund.currency, at=at, order_no=refund.order_no, reference=refund.reference, by=by,
    )  # fmt: skip


def _opened(session: Session, refund: Refund, approval_over: Decimal) -> RefundOpened:
    prepayment = session.exec(
        select(LedgerEntry.reference).where(LedgerEntry.key == f"prepayment:{refund.order_no}")
    ).first()
    return RefundOpened(
        state=refund.state, amount=refund.amount, currency=refund.currency, payment_reference=prepayment or "",
        needs_approval=refund_needs_approval(refund.amount, approval_over),
    )  # fmt: skip


def _refund(session: Session, order_no: str) -> Refund:
    refund = session.get(Refund, order_no)
    if refund is None:
        raise CommandError(f"order {order_no} has no refund open")
    return refund
