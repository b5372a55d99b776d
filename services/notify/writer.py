"""A notice of one kind written to the outbox for its recipients, once per key whatever the retries — the one way
an order's templated notices are written: by the order workflow's notify activity and by an automation's notify
action with a `template`.

The text comes from the notice templates (services/notify/templates.yaml, or notify_templates_file). Sending is not
done here: the outbox relay (services/notify/relay.py) sends what this writes, after the transaction commits.

A customer gets an e-mail (the customer's address) and an SMS (the ship-to phone), each with the link to the
order's tracking page. Staff notices go to everyone holding the role who is not disabled: always in the console's
inbox ('internal'), and by e-mail and SMS when they have the address on file and want that channel. An approval
request mailed to someone who may decide the level carries an approve link (services/links.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from core.config import Settings
from domain.approvals import may_decide
from models.status import NoticeKind
from models.tables import Customer, Notification, SalesOrder, User
from services.links import APPROVE_PATH, TOKEN_SLOT, TRACK_PATH, add_approval_link, tracking_token
from services.notify.recipients import Recipient, staff_recipients
from services.notify.templates import NoticeTemplates, load_templates

# The notices that ask someone for an approval decision: mailed with an approve link.
APPROVAL_REQUESTS = frozenset({NoticeKind.APPROVAL_NEEDED, NoticeKind.APPROVAL_REMINDER, NoticeKind.APPROVAL_ESCALATED})


def customer_recipients(session: Session, order: SalesOrder) -> list[Recipient]:
    """The customer's e-mail address on file and the ship-to phone, those that are there."""
    found: list[Recipient] = []
    customer = session.get(Customer, order.customer_id)
    if customer is not None and customer.email:
        found.append(("email", customer.email, None))
    phone = str(order.payload.get("ship_to", {}).get("phone") or "")
    if phone:
        found.append(("sms", phone, None))
    return found


@dataclass(frozen=True)
class NoticeWriter:
    settings: Settings
    templates: NoticeTemplates

    @classmethod
    def load(cls, settings: Settings) -> NoticeWriter:
        """With the templates file loaded and checked (a broken one raises TemplateError naming kind and field)."""
        return cls(settings, load_templates(settings.notify_templates_file))

    def write(
        self,
        session: Session,
        *,
        key: str,
        order_no: str,
        kind: str,
        now: datetime,
        customer: bool = False,
        role: str | None = None,
        recipients: list[Recipient] | None = None,
        channels: Collection[str] | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> list[Recipient]:
        """Queue the notice for the customer (`customer`), everyone holding `role`, or the `recipients` given
        (`channels` narrows them); one outbox row per `key`, channel and address. The recipients it was written
        for now (none: all were written before)."""
        order = session.get(SalesOrder, order_no)
        context = {"order_no": order_no, "role": role or ""}
        if order is not None:
            context.update(total=str(order.total), currency=order.currency)
            context["customer_name"] = str(order.payload.get("ship_to", {}).get("name") or order.customer_id)
        context.update(variables or {})
        found: list[Recipient] = list(recipients or [])
        if customer:
            found = []
            if order is not None:
                expires = now + self.settings.tracking_link_lifetime
                token = tracking_token(self.settings.link_secret, order_no, expires)
                context["tracking_url"] = self.settings.public_url(TRACK_PATH + token)
                found = customer_recipients(session, order)
        elif role is not None and recipients is None:
            found = staff_recipients(session, role)
        if channels is not None:
            found = [recipient for recipient in found if recipient[0] in channels]
        notice = self.templates.render(kind, context)
        written: list[Recipient] = []
        keys = {f"{key}:{channel}:{address}" for channel, address, _ in found}
        there = set(session.exec(select(Notification.key).where(col(Notification.key).in_(keys)))) if keys else set()
        for channel, address, user in found:
            row_key = f"{key}:{channel}:{address}"
            if row_key in there:
                continue
            there.add(row_key)
            text = notice
            if channel == "email" and user is not None and _asks(kind, order, user):
                assert order is not None and order.awaiting_level is not None and order.awaiting_role is not None
                add_approval_link(
                    session,
                    secret=self.settings.link_secret,
                    notice_key=row_key,
                    order_no=order_no,
                    level=order.awaiting_level,
                    role=order.awaiting_role,
                    approver=user.name,
                    now=now,
                    lifetime=self.settings.approval_link_lifetime,
                )
                approve_url = self.settings.public_url(APPROVE_PATH + TOKEN_SLOT)
                text = self.templates.render(kind, {**context, "approve_url": approve_url})
            session.add(
                Notification(
                    key=row_key,
                    order_no=order_no,
                    kind=kind,
                    channel=channel,
                    recipient=address,
                    subject=text.subject,
                    body=text.text_for(channel),
                )
            )
            written.append((channel, address, user))
        return written

    def preview(self, kind: str, variables: Mapping[str, str]) -> dict[str, str]:
        """What the template says for these variables (a dry run), links left out."""
        notice = self.templates.render(kind, {"tracking_url": "", "approve_url": "", **variables})
        return {"subject": notice.subject, "text": notice.text_for("email"), "sms": notice.text_for("sms")}


def _asks(kind: str, order: SalesOrder | None, user: User) -> bool:
    """Whether this notice asks `user` for a decision they may make on the level the order awaits now."""
    if kind not in APPROVAL_REQUESTS or order is None or order.awaiting_level is None or not order.awaiting_role:
        return False
    return may_decide(user.role, order.awaiting_role)
