"""A person's to-do inbox: the approvals waiting for their role (oldest first, with why each needs them) and the
staff notices addressed to them (unread first). The console's home page and its live badge read it here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, func, select

from domain.approvals import DECIDERS
from models.status import OrderStatus
from models.tables import Customer, Notification, SalesOrder
from services.billing.ledger import CreditPosition, credit_positions

# To-dos shown at once, the oldest first (the badge and the heading count them all): 50 fill a phone's day and
# keep the live page under 200 ms at 500 waiting (bench/console.py; 200 took ~300 ms at p95).
INBOX_LIMIT = 50


@dataclass(frozen=True)
class ApprovalTodo:
    order_no: str
    level: int
    role: str
    since: datetime
    until: datetime | None
    credit_hold: bool
    customer_id: str
    customer_name: str
    sales_rep: str
    channel: str
    currency: str
    total: Decimal
    lines: list[tuple[str, int]]  # (sku, qty)
    reasons: list[str]  # the review rules that fired
    exposure: Decimal  # with this order, the figure the credit check used
    credit_limit: Decimal
    completed_orders: int  # the customer's history with us
    first_order: bool

    def age(self, now: datetime) -> timedelta:
        return now - self.since

    def sla_used(self, now: datetime) -> float:
        """How much of the time to decide is gone (1.0 and more: past the deadline)."""
        if self.until is None or self.until <= self.since:
            return 0.0
        return (now - self.since) / (self.until - self.since)


def decidable_levels(role: str) -> list[str]:
    """The level roles a person holding `role` may decide (domain.approvals.DECIDERS: a director decides finance
    levels too, which is where an overdue finance level escalates)."""
    return sorted(level.value for level, deciders in DECIDERS.items() if role in {d.value for d in deciders})


def _awaiting(levels: list[str]) -> ColumnElement[bool]:
    return col(SalesOrder.awaiting_role).in_(levels)


def approval_count(session: Session, role: str, *, levels: list[str] | None = None) -> int:
    """Orders awaiting a level `role` may decide (or exactly `levels`, a substitute's share)."""
    where = _awaiting(decidable_levels(role) if levels is None else levels)
    return int(session.exec(select(func.count()).select_from(SalesOrder).where(where)).one())


def approval_todos(
    session: Session, role: str, *, levels: list[str] | None = None, limit: int = INBOX_LIMIT
) -> list[ApprovalTodo]:
    orders = session.exec(
        select(SalesOrder)
        .where(_awaiting(decidable_levels(role) if levels is None else levels))
        .order_by(col(SalesOrder.awaiting_since), col(SalesOrder.order_no))
        .limit(limit)
    ).all()
    return _todos(session, list(orders))


def approval_todo(session: Session, order_no: str) -> ApprovalTodo | None:
    """One order's decision as the inbox shows it (the approve-from-the-mail page), None if it awaits none."""
    order = session.get(SalesOrder, order_no)
    if order is None or not order.awaiting_role:
        return None
    return _todos(session, [order])[0]


def _todos(session: Session, orders: list[SalesOrder]) -> list[ApprovalTodo]:
    customer_ids = sorted({o.customer_id for o in orders})
    found = session.exec(select(Customer).where(col(Customer.customer_id).in_(customer_ids))).all()
    customers = {c.customer_id: c for c in found}
    positions = credit_positions(session, customer_ids)
    completed = dict(
        session.exec(
            select(SalesOrder.customer_id, func.count())
            .where(col(SalesOrder.customer_id).in_(customer_ids), SalesOrder.status == OrderStatus.COMPLETED.value)
            .group_by(col(SalesOrder.customer_id))
        ).all()
    )
    todos: list[ApprovalTodo] = []
    for order in orders:
        customer = customers.get(order.customer_id)
        # The position includes this order (it is open and billable): everything it and the others will bill
        owed = positions.get(order.customer_id, CreditPosition()).exposure
        todos.append(
            ApprovalTodo(
                order_no=order.order_no,
                level=order.awaiting_level or 1,
                role=order.awaiting_role or "",
                since=order.awaiting_since or order.updated_at,
                until=order.awaiting_until,
                credit_hold=order.status == OrderStatus.CREDIT_HOLD.value,
                customer_id=order.customer_id,
                customer_name=customer.name if customer else order.customer_id,
                sales_rep=order.sales_rep,
                channel=order.channel,
                currency=order.currency,
                total=order.total,
                lines=[(str(line["sku"]), int(line["qty"])) for line in order.payload.get("lines", [])],
                reasons=list(order.awaiting_why or []),
                exposure=owed,
                credit_limit=customer.credit_limit if customer else Decimal("0.00"),
                completed_orders=int(completed.get(order.customer_id, 0)),
                first_order=bool(customer.first_order) if customer else True,
            )
        )
    return todos


@dataclass(frozen=True)
class StaffNotice:
    id: int
    order_no: str
    kind: str
    subject: str
    body: str
    at: datetime
    read: bool


def notices(session: Session, user: str, *, limit: int = INBOX_LIMIT) -> list[StaffNotice]:
    """The in-app notices addressed to `user`: unread first, newest first within each."""
    rows = session.exec(
        select(Notification)
        .where(Notification.channel == "internal", Notification.recipient == user)
        .order_by(col(Notification.read_at).is_not(None), col(Notification.created_at).desc())
        .limit(limit)
    ).all()
    return [
        StaffNotice(
            id=row.id or 0,
            order_no=row.order_no,
            kind=row.kind,
            subject=row.subject,
            body=row.body,
            at=row.created_at,
            read=row.read_at is not None,
        )
        for row in rows
    ]


def unread_count(session: Session, user: str) -> int:
    query = select(func.count()).select_from(Notification)
    query = query.where(
        Notification.channel == "internal", Notification.recipient == user, col(Notification.read_at).is_(None)
    )
    return int(session.exec(query).one())
