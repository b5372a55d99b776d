"""The links notices carry, both signed with the link secret.

Approve from the mail: an approval request e-mailed to an approver carries /console/approve/{token}. The token is
derived from the secret and the notice's outbox key, so it is never stored: the outbox body holds TOKEN_SLOT and
the relay puts the token there as it sends (a re-sent mail carries the same link). The approval_links row holds
only the token's hash and what it is bound to: one order, one level (and its role), one approver. It works once,
until it expires, and only while the order still awaits that level from that role: a decision by any path, an
escalation or a disabled approver voids it.

Tracking page: every shipping notice to a customer carries /track/{token}, naming one order and when the link
ends, under an HMAC; the server keeps no list of them. The link is in the notice's stored body (the outbox, like
the customer's address), and it grants no more than that row already shows: the page it opens reads that order's
customer view only. (An approve token, which acts, is never stored; a tracking token, which only reads, is.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, not_, update
from sqlmodel import Session, col

from core.db import unit_of_work
from domain.approvals import may_decide
from models.tables import ApprovalLink, SalesOrder, User

TOKEN_SLOT = "{approval_token}"  # where a stored e-mail body's approve token goes when the relay sends it
APPROVE_PATH = "/console/approve/"
TRACK_PATH = "/track/"


class LinkRefused(Exception):
    """The link does not work (any more): `reason` (a key of REASONS, also the console's message key `link_<reason>`)
    says why, for the person who followed it."""

    REASONS = {
        "invalid": "This link is not valid: check that it was copied whole from the message.",
        "used": "This link was used on {at} UTC; a link works once.",
        "moved_on": "Order {order_no} no longer awaits this decision: someone decided it, or it moved on.",
        "expired": "This link expired on {at} UTC.",
        "not_yours": "This decision on order {order_no} is no longer yours to make.",
    }

    def __init__(self, reason: str, *, order_no: str = "", at: datetime | None = None) -> None:
        self.reason = reason
        self.order_no = order_no
        self.at = f"{at:%Y-%m-%d %H:%M}" if at else ""
        super().__init__(self.REASONS[reason].format(order_no=order_no, at=self.at))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, message: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}:{message}".encode(), hashlib.sha256).digest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- approve from the mail --------------------------------------------------------------------------------


def approval_token(secret: str, notice_key: str) -> str:
    return _b64(_mac(secret, "approval-link", notice_key))


def fill_approval_token(body: str, secret: str, notice_key: str) -> str:
    """The mail as sent: its TOKEN_SLOT (if any) replaced by the token of this notice."""
    return body.replace(TOKEN_SLOT, approval_token(secret, notice_key)) if TOKEN_SLOT in body else body


def add_approval_link(
    session: Session,
    *,
    secret: str,
    notice_key: str,
    order_no: str,
    level: int,
    role: str,
    approver: str,
    now: datetime,
    lifetime: timedelta,
) -> None:
    """Record the link of one approval request mail (once: a retried activity finds it)."""
    digest = token_hash(approval_token(secret, notice_key))
    if session.get(ApprovalLink, digest) is None:
        session.add(
            ApprovalLink(
                token_hash=digest,
                order_no=order_no,
                level=level,
                role=role,
                approver=approver,
                created_at=now,
                expires_at=now + lifetime,
            )
        )


@dataclass(frozen=True)
class ApprovalGrant:
    """What a working link lets its holder do: decide `level` of `order_no` as `approver`."""

    token_hash: str
    order_no: str
    level: int
    role: str
    approver: str
    approver_role: str
    expires_at: datetime


def open_approval_link(session: Session, token: str, now: datetime) -> ApprovalGrant:
    """The grant of a working link, else LinkRefused saying why (used, expired, decided, no longer theirs)."""
    link = session.get(ApprovalLink, token_hash(token)) if len(token) < 100 else None
    if link is None:
        raise LinkRefused("invalid")
    if link.used_at is not None:
        raise LinkRefused("used", order_no=link.order_no, at=link.used_at)
    if link.voided_at is not None:
        raise LinkRefused("moved_on", order_no=link.order_no)
    if link.expires_at <= now:
        raise LinkRefused("expired", order_no=link.order_no, at=link.expires_at)
    order = session.get(SalesOrder, link.order_no)
    if order is None or (order.awaiting_level, order.awaiting_role) != (link.level, link.role):
        raise LinkRefused("moved_on", order_no=link.order_no)
    user = session.get(User, link.approver)
    if user is None or user.disabled or not may_decide(user.role, link.role):
        raise LinkRefused("not_yours", order_no=link.order_no)
    return ApprovalGrant(
        token_hash=link.token_hash,
        order_no=link.order_no,
        level=link.level,
        role=link.role,
        approver=user.name,
        approver_role=user.role,
        expires_at=link.expires_at,
    )


def spend_approval_link(engine: Engine, grant: ApprovalGrant, now: datetime) -> bool:
    """Take the link for one decision: False when another request took it first (or it was voided since)."""
    with unit_of_work(engine) as session:
        taken = session.exec(
            update(ApprovalLink)
            .where(
                col(ApprovalLink.token_hash) == grant.token_hash,
                col(ApprovalLink.used_at).is_(None),
                col(ApprovalLink.voided_at).is_(None),
            )
            .values(used_at=now)
        )
        return bool(taken.rowcount)


def release_approval_link(engine: Engine, grant: ApprovalGrant) -> None:
    """Give a taken link back when its decision was not made (refused, or Temporal unreachable)."""
    with unit_of_work(engine) as session:
        session.exec(update(ApprovalLink).where(col(ApprovalLink.token_hash) == grant.token_hash).values(used_at=None))


def void_approval_links(session: Session, order_no: str, now: datetime, *, awaiting: tuple[int, str] | None) -> None:
    """Void the order's unused links except those for the level and role it awaits now (None: all of them)."""
    query = update(ApprovalLink).where(
        col(ApprovalLink.order_no) == order_no,
        col(ApprovalLink.used_at).is_(None),
        col(ApprovalLink.voided_at).is_(None),
    )
    if awaiting is not None:
        level, role = awaiting
        query = query.where(not_(and_(col(ApprovalLink.level) == level, col(ApprovalLink.role) == role)))
    session.exec(query.values(voided_at=now))


# --- the customer's tracking page -------------------------------------------------------------------------


def tracking_token(secret: str, order_no: str, expires: datetime) -> str:
    message = f"{order_no}|{int(expires.timestamp())}"
    return f"{_b64(message.encode())}.{_b64(_mac(secret, 'tracking-link', message))}"


def tracking_order(secret: str, token: str, now: datetime) -> str:
    """The order a tracking link names, else LinkRefused (tampered with, or expired)."""
    try:
        encoded, signature = token.split(".")
        message = _unb64(encoded).decode()
        order_no, expires_at = message.rsplit("|", 1)
        expires = datetime.fromtimestamp(int(expires_at), UTC)
        given = _unb64(signature)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise LinkRefused("invalid") from None
    if not hmac.compare_digest(given, _mac(secret, "tracking-link", message)):
        raise LinkRefused("invalid")
    if expires <= now:
        raise LinkRefused("expired", at=expires)
    return order_no
