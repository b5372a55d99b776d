"""Notices to customers and staff, written once to the outbox (unique key) whatever the retries.

The text comes from the notice templates (services/notify/templates.yaml, or notify_templates_file),
loaded and checked when the activities are built, i.e. when the worker starts. Sending is not done here:
the outbox relay (services/notify/relay.py) sends what this writes, after the transaction commits.

Staff notices go to everyone holding the role who is not disabled: always in the console's inbox ('internal'),
and by e-mail and SMS when they have the address on file and want that channel (users.notify_email/notify_sms).
An approval request mailed to someone who may decide the level carries an approve link (services/links.py);
every customer notice carries the link to the order's tracking page.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import select
from temporalio import activity

from activities.base import DbActivities
from core.config import Settings
from domain.approvals import may_decide
from models.contracts import NotifyInput
from models.tables import Customer, Notification, SalesOrder, User
from services.links import APPROVE_PATH, TOKEN_SLOT, TRACK_PATH, add_approval_link, tracking_token
from services.notify.recipients import staff_recipients
from services.notify.templates import load_templates
from workflows.contract import NoticeKind
from workflows.steps import NotifySteps

# The notices that ask someone for an approval decision: mailed with an approve link.
APPROVAL_REQUESTS = frozenset({NoticeKind.APPROVAL_NEEDED, NoticeKind.APPROVAL_REMINDER, NoticeKind.APPROVAL_ESCALATED})


class NotifyActivities(DbActivities, NotifySteps):
    def __init__(self, engine: Engine, settings: Settings) -> None:
        super().__init__(engine, settings)
        # A broken templates file stops the worker here, at start-up (TemplateError names kind and field).
        self.templates = load_templates(settings.notify_templates_file)

    @activity.defn
    def notify(self, inp: NotifyInput) -> int:
        """Queue the notice for each recipient; returns how many outbox rows this call added."""
        now = datetime.now(UTC)
        with self.transaction(inp.order_no) as session:
            order = session.get(SalesOrder, inp.order_no)
            variables = {"order_no": inp.order_no, "role": inp.role.value if inp.role else ""}
            recipients: list[tuple[str, str, User | None]] = []
            if order is not None:
                variables.update(total=str(order.total), currency=order.currency)
                ship_to = order.payload.get("ship_to", {})
                variables["customer_name"] = str(ship_to.get("name") or order.customer_id)
            variables.update(inp.variables)
            if inp.audience == "customer" and order is not None:
                expires = now + self.settings.tracking_link_lifetime
                token = tracking_token(self.settings.link_secret, inp.order_no, expires)
                variables["tracking_url"] = self.settings.public_url(TRACK_PATH + token)
                customer = session.get(Customer, order.customer_id)
                if customer is not None and customer.email:
                    recipients.append(("email", customer.email, None))
                phone = str(order.payload.get("ship_to", {}).get("phone") or "")
                if phone:
                    recipients.append(("sms", phone, None))
            elif inp.role is not None:
                recipients.extend(staff_recipients(session, inp.role.value))
            notice = self.templates.render(inp.kind, variables)
            added = 0
            for channel, recipient, user in recipients:
                key = f"{inp.key}:{channel}:{recipient}"
                if session.exec(select(Notification.id).where(Notification.key == key)).first() is not None:
                    continue
                text = notice
                if channel == "email" and user is not None and self._asks(inp.kind, order, user):
                    assert order is not None and order.awaiting_level is not None and order.awaiting_role is not None
                    add_approval_link(
                        session,
                        secret=self.settings.link_secret,
                        notice_key=key,
                        order_no=inp.order_no,
                        level=order.awaiting_level,
                        role=order.awaiting_role,
                        approver=user.name,
                        now=now,
                        lifetime=self.settings.approval_link_lifetime,
                    )
                    approve_url = self.settings.public_url(APPROVE_PATH + TOKEN_SLOT)
                    text = self.templates.render(inp.kind, {**variables, "approve_url": approve_url})
                session.add(
                    Notification(
                        key=key,
                        order_no=inp.order_no,
                        kind=inp.kind,
                        channel=channel,
                        recipient=recipient,
                        subject=text.subject,
                        body=text.text_for(channel),
                    )
                )
                added += 1
        return added

    @staticmethod
    def _asks(kind: str, order: SalesOrder | None, user: User) -> bool:
        """Whether this notice asks `user` for a decision they may make on the level the order awaits now."""
        if kind not in APPROVAL_REQUESTS or order is None or order.awaiting_level is None or not order.awaiting_role:
            return False
        return may_decide(user.role, order.awaiting_role)
