"""Notices to customers and staff, written once to the outbox (unique key) whatever the retries."""

from __future__ import annotations

from string import Template

from sqlmodel import select
from temporalio import activity

from activities.base import DbActivities
from models.contracts import NotifyInput
from models.tables import Customer, Notification, SalesOrder, User

TEMPLATES: dict[str, str] = {
    "approval_needed": "Order $order_no ($total $currency) awaits your $role decision.",
    "approval_reminder": "Reminder: order $order_no has waited $waited for a $role decision.",
    "approval_escalated": "Escalation: order $order_no has waited $waited for a $level_role decision.",
    "payment_requested": "Dear $customer_name, order $order_no awaits prepayment of $total $currency.",
    "backordered": "Order $order_no is short of stock: $shortages. Please replenish.",
    "refund": "Order $order_no was cancelled after payment: refund $total $currency ($reason).",
    "cancelled": "Dear $customer_name, your order $order_no was cancelled: $reason.",
    "rejected": "Dear $customer_name, we could not accept order $order_no: $reason.",
    "dispatched": "Dear $customer_name, order $order_no is on its way with $carrier, tracking number $tracking_no.",
    "out_for_delivery": "Dear $customer_name, order $order_no ($tracking_no) is out for delivery today.",
    "delivery_exception": "Order $order_no ($tracking_no) has a delivery problem: $status.",
    "delivered": "Dear $customer_name, order $order_no was delivered and signed for by $signed_by.",
}


class NotifyActivities(DbActivities):
    @activity.defn
    def notify(self, inp: NotifyInput) -> int:
        """Queue the notice for each recipient; returns how many outbox rows this call added."""
        with self.transaction(inp.order_no) as session:
            order = session.get(SalesOrder, inp.order_no)
            variables = {"order_no": inp.order_no, "role": inp.role.value if inp.role else ""}
            recipients: list[tuple[str, str]] = []
            if order is not None:
                variables.update(total=str(order.total), currency=order.currency)
                ship_to = order.payload.get("ship_to", {})
                variables["customer_name"] = str(ship_to.get("name") or order.customer_id)
            variables.update(inp.variables)
            if inp.audience == "customer" and order is not None:
                customer = session.get(Customer, order.customer_id)
                if customer is not None and customer.email:
                    recipients.append(("email", customer.email))
                phone = str(order.payload.get("ship_to", {}).get("phone") or "")
                if phone:
                    recipients.append(("sms", phone))
            elif inp.role is not None:
                names = session.exec(select(User.name).where(User.role == inp.role.value)).all()
                recipients.extend(("internal", name) for name in names)
            body = Template(TEMPLATES.get(inp.kind, "$order_no: $kind")).safe_substitute(variables, kind=inp.kind)
            added = 0
            for channel, recipient in recipients:
                key = f"{inp.key}:{channel}:{recipient}"
                if session.exec(select(Notification.id).where(Notification.key == key)).first() is not None:
                    continue
                session.add(
                    Notification(
                        key=key, order_no=inp.order_no, kind=inp.kind, channel=channel, recipient=recipient, body=body
                    )
                )
                added += 1
        return added
