"""Notices to customers and staff, written once to the outbox (unique key) whatever the retries.

The text comes from the notice templates (services/notify/templates.yaml, or notify_templates_file),
loaded and checked when the activities are built, i.e. when the worker starts. Sending is not done here:
the outbox relay (services/notify/relay.py) sends what this writes, after the transaction commits.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select
from temporalio import activity

from activities.base import DbActivities
from core.config import Settings
from models.contracts import NotifyInput
from models.tables import Customer, Notification, SalesOrder, User
from services.notify.templates import load_templates
from workflows.steps import NotifySteps


class NotifyActivities(DbActivities, NotifySteps):
    def __init__(self, engine: Engine, settings: Settings) -> None:
        super().__init__(engine, settings)
        # A broken templates file stops the worker here, at start-up (TemplateError names kind and field).
        self.templates = load_templates(settings.notify_templates_file)

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
            notice = self.templates.render(inp.kind, variables)
            added = 0
            for channel, recipient in recipients:
                key = f"{inp.key}:{channel}:{recipient}"
                if session.exec(select(Notification.id).where(Notification.key == key)).first() is not None:
                    continue
                session.add(
                    Notification(
                        key=key,
                        order_no=inp.order_no,
                        kind=inp.kind,
                        channel=channel,
                        recipient=recipient,
                        subject=notice.subject,
                        body=notice.text_for(channel),
                    )
                )
                added += 1
        return added
