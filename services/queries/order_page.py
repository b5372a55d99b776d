"""The console's order page: the order view (order_view.py) and what people ask next — its pick lists, the
notices it sent, the customer's credit picture."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from models.tables import Customer, Notification, PickList, SalesOrder
from services.billing.ledger import CreditPosition, credit_positions
from services.queries.order_view import order_view


def masked(recipient: str, channel: str) -> str:
    """A customer's address shown to staff without giving it away: enough to tell which one it was."""
    if channel == "email" and "@" in recipient:
        local, domain = recipient.split("@", 1)
        return f"{local[:1]}***@{domain}"
    if channel == "sms" and len(recipient) > 4:
        return f"{recipient[:3]}****{recipient[-4:]}"
    return recipient


def order_page(session: Session, order_no: str, *, with_credit: bool) -> dict[str, Any]:
    """`with_credit`: the customer's credit picture too (only for those who may read customers' credit)."""
    view = order_view(session, order_no)  # raises OrderNotFound
    order = session.get(SalesOrder, order_no)
    assert order is not None
    pick_lists = session.exec(select(PickList).where(PickList.order_no == order_no).order_by(col(PickList.id))).all()
    notices = session.exec(
        select(Notification).where(Notification.order_no == order_no).order_by(col(Notification.id))
    ).all()
    customer = session.get(Customer, order.customer_id)
    position = credit_positions(session, [order.customer_id]).get(order.customer_id, CreditPosition())
    view.update(
        customer_name=customer.name if customer else order.customer_id,
        workflow_id=order.workflow_id,
        created_at=order.created_at,
        awaiting_role=order.awaiting_role,
        awaiting_level=order.awaiting_level,
        credit={
            "limit": customer.credit_limit if customer else Decimal("0.00"),
            "receivables": position.receivables,
            "open_orders": position.to_bill,
            "exposure": position.exposure,
        }
        if with_credit
        else None,
        pick_lists=[
            {"warehouse": p.warehouse, "state": p.state, "lines": p.lines, "created_at": p.created_at}
            for p in pick_lists
        ],
        notices=[
            {
                "kind": n.kind,
                "channel": n.channel,
                "recipient": masked(n.recipient, n.channel),
                "status": n.status,
                "created_at": n.created_at,
                "sent_at": n.sent_at,
            }
            for n in notices
        ],
    )
    return view
