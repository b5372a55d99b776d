"""Finance's work list (the console's /console/finance and its inbox card): payments to confirm, credit holds,
refunds to approve (over the approval amount) and to make by hand (the provider refused them, or the order stopped
before refunds went through the provider) — each oldest first, with what it takes to act on it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, or_
from sqlmodel import Session, col, func, select

from models.status import OrderStatus, RefundState
from models.tables import Customer, OrderEvent, Refund, SalesOrder
from services.refunds import REFUNDABLE

LIST_LIMIT = 200


@dataclass(frozen=True)
class MoneyTodo:
    order_no: str
    customer_id: str
    customer_name: str
    sales_rep: str
    currency: str
    total: Decimal
    since: datetime  # when the order reached this state
    detail: str  # a credit hold's reason; a refund's cancellation reason


def _todos(session: Session, orders: list[SalesOrder], details: dict[str, str]) -> list[MoneyTodo]:
    ids = sorted({o.customer_id for o in orders})
    names = dict(
        session.exec(select(Customer.customer_id, Customer.name).where(col(Customer.customer_id).in_(ids))).all()
    )
    return [
        MoneyTodo(
            order_no=o.order_no,
            customer_id=o.customer_id,
            customer_name=str(names.get(o.customer_id, o.customer_id)),
            sales_rep=o.sales_rep,
            currency=o.currency,
            total=o.total,
            since=o.awaiting_since or o.updated_at,
            detail=details.get(o.order_no, ""),
        )
        for o in orders
    ]


def payments_to_confirm(session: Session) -> list[MoneyTodo]:
    orders = session.exec(
        select(SalesOrder)
        .where(SalesOrder.status == OrderStatus.AWAITING_PAYMENT.value, col(SalesOrder.paid).is_(False))
        .order_by(col(SalesOrder.updated_at), col(SalesOrder.order_no))
        .limit(LIST_LIMIT)
    ).all()
    return _todos(session, list(orders), {})


def credit_holds(session: Session) -> list[MoneyTodo]:
    orders = session.exec(
        select(SalesOrder)
        .where(SalesOrder.status == OrderStatus.CREDIT_HOLD.value)
        .order_by(col(SalesOrder.awaiting_since), col(SalesOrder.order_no))
        .limit(LIST_LIMIT)
    ).all()
    return _todos(session, list(orders), {o.order_no: "; ".join(o.awaiting_why or o.reasons) for o in orders})


def refunds_due(session: Session) -> list[MoneyTodo]:
    """Refunds finance makes by hand: the refund's amount, and why (the order's end, the provider's refusal)."""
    orders = session.exec(
        select(SalesOrder)
        .where(*_refund_conditions())
        .order_by(col(SalesOrder.updated_at), col(SalesOrder.order_no))
        .limit(LIST_LIMIT)
    ).all()
    # Why it ended: the detail of its last event (a cancellation's reason, a rejection's reasons).
    ends = session.exec(
        select(OrderEvent)
        .where(col(OrderEvent.order_no).in_([o.order_no for o in orders]), col(OrderEvent.status).in_(REFUNDABLE))
        .order_by(col(OrderEvent.seq))
    ).all()
    details = {event.order_no: event.detail for event in ends}
    refunds = {r.order_no: r for r in session.exec(select(Refund).where(col(Refund.order_no).in_(details)))}
    todos = _todos(session, list(orders), details)
    return [_as_refund(todo, refunds[todo.order_no]) if todo.order_no in refunds else todo for todo in todos]


def refunds_to_approve(session: Session) -> list[MoneyTodo]:
    """Refunds over the approval amount, waiting for a finance decision (the refund's amount and reason)."""
    refunds = session.exec(
        select(Refund)
        .where(Refund.state == RefundState.AWAITING_APPROVAL)
        .order_by(col(Refund.requested_at), col(Refund.order_no))
        .limit(LIST_LIMIT)
    ).all()
    by_order = {r.order_no: r for r in refunds}
    orders = session.exec(select(SalesOrder).where(col(SalesOrder.order_no).in_(by_order))).all()
    todos = {t.order_no: t for t in _todos(session, list(orders), {})}
    return [_as_refund(todos[r.order_no], r) for r in refunds if r.order_no in todos]


def _as_refund(todo: MoneyTodo, refund: Refund) -> MoneyTodo:
    detail = "; ".join(part for part in (refund.reason, refund.why) if part) or todo.detail
    return replace(todo, total=refund.amount, since=refund.requested_at or todo.since, detail=detail)


# A paid order that just stopped has its refund opened by its RefundPayment within seconds: it is finance's to make
# by hand only if none is under way by then (a run that stopped before refunds went through the provider).
REFUND_GRACE = timedelta(minutes=10)


def _refund_conditions() -> tuple[ColumnElement[bool], ...]:
    made_or_under_way = select(Refund.order_no).where(Refund.state != RefundState.FAILED)
    failed = select(Refund.order_no).where(Refund.state == RefundState.FAILED)
    cutoff = datetime.now(UTC) - REFUND_GRACE
    return (
        col(SalesOrder.status).in_(REFUNDABLE),
        col(SalesOrder.paid).is_(True),
        col(SalesOrder.order_no).not_in(made_or_under_way),
        or_(col(SalesOrder.updated_at) < cutoff, col(SalesOrder.order_no).in_(failed)),
    )


@dataclass(frozen=True)
class FinanceCounts:
    payments: int
    credit_holds: int
    refunds: int  # to make by hand, and to approve

    @property
    def total(self) -> int:
        return self.payments + self.credit_holds + self.refunds


def finance_counts(session: Session) -> FinanceCounts:
    def count(*conditions: ColumnElement[bool]) -> int:
        return int(session.exec(select(func.count()).select_from(SalesOrder).where(*conditions)).one())

    return FinanceCounts(
        payments=count(col(SalesOrder.status) == OrderStatus.AWAITING_PAYMENT.value, col(SalesOrder.paid).is_(False)),
        credit_holds=count(col(SalesOrder.status) == OrderStatus.CREDIT_HOLD.value),
        refunds=count(*_refund_conditions())
        + int(session.exec(select(func.count()).where(Refund.state == RefundState.AWAITING_APPROVAL)).one()),
    )
