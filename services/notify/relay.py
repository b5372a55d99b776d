"""The outbox relay: sends the notices activities/notify.py wrote to the `notifications` table.

One sweep (`deliver_due`):
1. claim, in one short transaction, up to `batch` due rows (status queued/unsent/sending with next_attempt_at
   <= now, on a channel we can send). Postgres: `SELECT ... FOR UPDATE SKIP LOCKED`, so relays in other worker
   processes skip these rows; SQLite: the engine's BEGIN IMMEDIATE serialises the claims. Claimed rows become
   'sending' with attempts + 1 and next_attempt_at = now + lease; 'internal' (in-app staff) notices become
   'delivered' at once. Rows of a channel without a sender become 'unsent' (last_error says which setting).
2. send each claimed row with no transaction open;
3. record each outcome in its own short transaction: 'sent' (sent_at), or back to 'queued' after an
   exponential backoff (30 s, 1 min, 2 min ... at most 1 h) with last_error, or 'failed' when the far end refused
   it for good or notify_max_attempts is used up. The update only applies while the row is still ours (status
   'sending' with our attempt number), so a relay that lost its lease cannot overwrite the row's newer state.

Delivery is at-least-once: a relay killed between the far end's acceptance and step 3 leaves the row 'sending';
when its lease (5 min) ends the row is due again and is sent a second time. The duplicate carries the same
Message-ID / SMS reference (both derived from the outbox key) so the recipient's side can recognise it.

`running_relay` runs sweeps every notify_relay_interval seconds in a worker thread for as long as its block.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, case, or_, update
from sqlmodel import col, select

from core.config import Settings
from core.db import unit_of_work
from integrations.notify.base import (
    ChannelUnavailable,
    DeliveryError,
    OutgoingNotice,
    PermanentDeliveryError,
    Sender,
)
from integrations.notify.mail import SmtpSender
from integrations.notify.sms import SmsGatewaySender
from models.tables import Notification, NotificationStatus
from services.links import fill_approval_token

log = structlog.get_logger(__name__)

INTERNAL = "internal"
SENDING_LEASE = timedelta(minutes=5)
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
BATCH = 20
ERROR_MAX = 1000  # Notification.last_error
UNCONFIGURED = {
    "email": "unsent: no SMTP configured (ORDERFLOW_SMTP_HOST is empty)",
    "sms": "unsent: no SMS gateway configured (ORDERFLOW_SMS_GATEWAY_URL is empty)",
}
CLAIMABLE = (NotificationStatus.QUEUED, NotificationStatus.UNSENT, NotificationStatus.SENDING)


def retry_delay(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed try: 30 s, 1 min, 2 min, 4 min ... never more than an hour."""
    delay: timedelta = RETRY_BASE * 2 ** min(max(attempts - 1, 0), 16)  # the exponent capped: no overflow
    return min(delay, RETRY_CAP)


@dataclass
class Sweep:
    claimed: int = 0  # rows this sweep took (sent, internal, or tried)
    delivered: int = 0  # sent + internal rows marked delivered
    retrying: int = 0
    failed: int = 0
    released: int = 0  # claimed but put back untried (channel down, or the lease running out)
    unsent: int = 0  # rows of unconfigured channels marked 'unsent'


def deliver_due(
    engine: Engine,
    senders: Mapping[str, Sender],
    now: datetime,
    *,
    max_attempts: int = 8,
    lease: timedelta = SENDING_LEASE,
    batch: int = BATCH,
    link_secret: str = "",
) -> int:
    """One sweep; returns how many notices it delivered (sent, plus internal ones marked delivered)."""
    return sweep(
        engine, senders, now, max_attempts=max_attempts, lease=lease, batch=batch, link_secret=link_secret
    ).delivered


def sweep(
    engine: Engine,
    senders: Mapping[str, Sender],
    now: datetime,
    *,
    max_attempts: int = 8,
    lease: timedelta = SENDING_LEASE,
    batch: int = BATCH,
    link_secret: str = "",
) -> Sweep:
    """`link_secret` completes the approve links of approval request mails (services/links.py)."""
    result = Sweep()
    claimed_at = time.monotonic()
    notices = _claim(engine, set(senders), now, lease, batch, result)
    if link_secret:
        notices = [replace(n, body=fill_approval_token(n.body, link_secret, n.key)) for n in notices]
    down: dict[str, datetime] = {}  # channel → when to try it again: its other notices go back untried
    for notice in notices:
        if notice.channel in down:
            _record(engine, notice, _released(notice, down[notice.channel]), result, "released")
            continue
        # Stop before the lease can run out under a slow far end: another relay may take the row after it.
        if time.monotonic() - claimed_at > lease.total_seconds() / 2:
            _record(engine, notice, _released(notice, now), result, "released")
            continue
        try:
            senders[notice.channel].send(notice)
        except PermanentDeliveryError as exc:
            _record(engine, notice, _failed(str(exc)), result, "failed")
        except Exception as exc:  # DeliveryError, and a sender's own bug: both retried, neither stops the sweep
            if not isinstance(exc, DeliveryError):
                log.error("sender raised an unexpected error", **_ids(notice), exc_info=True)
            if isinstance(exc, ChannelUnavailable):
                down[notice.channel] = now + retry_delay(notice.attempt)
            if notice.attempt >= max_attempts:
                error = f"gave up after {notice.attempt} attempts: {exc}"
                _record(engine, notice, _failed(error), result, "failed")
            else:
                _record(engine, notice, _retry(notice, now, str(exc)), result, "retrying")
        else:
            _record(engine, notice, _sent(now), result, "delivered")
    return result


def _claim(
    engine: Engine, channels: set[str], now: datetime, lease: timedelta, batch: int, result: Sweep
) -> list[OutgoingNotice]:
    sendable = channels | {INTERNAL}
    # No next_attempt_at: written by a worker older than migration 0004 during a rolling deploy. Due now.
    due = or_(col(Notification.next_attempt_at) <= now, col(Notification.next_attempt_at).is_(None))
    with unit_of_work(engine) as session:
        unconfigured = session.exec(
            update(Notification)
            .where(
                col(Notification.status).in_([NotificationStatus.QUEUED, NotificationStatus.SENDING]),
                due,
                col(Notification.channel).not_in(sendable),
            )
            .values(
                status=NotificationStatus.UNSENT,
                last_error=case(UNCONFIGURED, value=col(Notification.channel), else_="unsent: no sender for channel"),
            )
        )
        result.unsent = int(unconfigured.rowcount or 0)
        rows = session.exec(
            select(Notification)
            .where(
                col(Notification.status).in_(CLAIMABLE),
                due,
                col(Notification.channel).in_(sendable),
            )
            .order_by(col(Notification.next_attempt_at), col(Notification.id))
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        notices: list[OutgoingNotice] = []
        for row in rows:
            assert row.id is not None
            row.attempts += 1
            if row.channel == INTERNAL:  # in-app: the row is the delivery
                row.status, row.sent_at, row.next_attempt_at = NotificationStatus.DELIVERED, now, None
                result.delivered += 1
                continue
            row.status, row.next_attempt_at = NotificationStatus.SENDING, now + lease
            notices.append(
                OutgoingNotice(
                    id=row.id,
                    key=row.key,
                    channel=row.channel,
                    order_no=row.order_no,
                    kind=row.kind,
                    recipient=row.recipient,
                    subject=row.subject,
                    body=row.body,
                    attempt=row.attempts,
                )
            )
        result.claimed = len(rows)
    if result.unsent:
        log.warning("notices left unsent: channel not configured", rows=result.unsent)
    return notices


def _sent(now: datetime) -> dict[str, Any]:
    # last_error says why a row is not sent: cleared once it is (attempts still tells how many tries it took).
    return {"status": NotificationStatus.SENT, "sent_at": now, "next_attempt_at": None, "last_error": None}


def _failed(error: str) -> dict[str, Any]:
    return {"status": NotificationStatus.FAILED, "next_attempt_at": None, "last_error": error[:ERROR_MAX]}


def _retry(notice: OutgoingNotice, now: datetime, error: str) -> dict[str, Any]:
    return {
        "status": NotificationStatus.QUEUED,
        "next_attempt_at": now + retry_delay(notice.attempt),
        "last_error": error[:ERROR_MAX],
    }


def _released(notice: OutgoingNotice, due: datetime) -> dict[str, Any]:
    # Not tried: the attempt is given back; due again with the channel (or at once, when the lease ran short).
    return {"status": NotificationStatus.QUEUED, "attempts": notice.attempt - 1, "next_attempt_at": due}


def _record(engine: Engine, notice: OutgoingNotice, values: dict[str, Any], result: Sweep, outcome: str) -> None:
    """Write one outcome, only while the row is still this sweep's claim; one bad write never stops a sweep."""
    try:
        with unit_of_work(engine) as session:
            changed = session.exec(
                update(Notification)
                .where(
                    col(Notification.id) == notice.id,
                    col(Notification.status) == NotificationStatus.SENDING,
                    col(Notification.attempts) == notice.attempt,
                )
                .values(**values)
            )
            ours = bool(changed.rowcount)
    except Exception:
        # The row stays 'sending' and is due again when its lease ends (at-least-once).
        log.exception("cannot record a notice's outcome", **_ids(notice), outcome=outcome)
        return
    if not ours:
        log.warning("notice lease lost: another relay took the row", **_ids(notice), outcome=outcome)
        return
    setattr(result, outcome, getattr(result, outcome) + 1)
    if outcome == "delivered":
        log.info("notice sent", **_ids(notice))
    elif outcome in ("retrying", "failed"):
        log.warning(f"notice {outcome}", **_ids(notice), error=values.get("last_error"))


def _ids(notice: OutgoingNotice) -> dict[str, Any]:
    # No recipient: addresses and phone numbers stay out of the logs.
    return {
        "notification_id": notice.id,
        "order_no": notice.order_no,
        "kind": notice.kind,
        "channel": notice.channel,
        "attempt": notice.attempt,
    }


def build_senders(settings: Settings) -> dict[str, Sender]:
    """A sender per configured channel: an empty smtp_host / sms_gateway_url leaves that channel out."""
    senders: dict[str, Sender] = {}
    if settings.smtp_host:
        senders["email"] = SmtpSender.from_settings(settings)
    if settings.sms_gateway_url:
        senders["sms"] = SmsGatewaySender.from_settings(settings)
    return senders


class OutboxRelay:
    """Sweeps every `interval` seconds (at once again when a sweep filled its batch) until stopped."""

    def __init__(
        self,
        engine: Engine,
        senders: Mapping[str, Sender],
        *,
        interval: float,
        max_attempts: int,
        link_secret: str = "",
    ) -> None:
        self.engine = engine
        self.link_secret = link_secret
        self.senders = dict(senders)
        self.interval = interval
        self.max_attempts = max_attempts
        self.sweeps = 0
        self.delivered = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Sweep now instead of at the end of the interval."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        unconfigured = sorted(set(UNCONFIGURED) - set(self.senders))
        log.info("notify relay started", channels=sorted(self.senders), unconfigured=unconfigured)
        while not self._stopping:
            self._wake.clear()
            full = False
            try:
                done = await asyncio.to_thread(
                    sweep,
                    self.engine,
                    self.senders,
                    datetime.now(UTC),
                    max_attempts=self.max_attempts,
                    link_secret=self.link_secret,
                )
                self.sweeps += 1
                self.delivered += done.delivered
                full = done.claimed >= BATCH and not done.released  # a backlog, and the far ends are up
            except Exception:  # the database is away, say: log it and try again next interval
                log.exception("notify relay sweep failed")
            if full or self._stopping:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
        log.info("notify relay stopped", sweeps=self.sweeps, delivered=self.delivered)


@asynccontextmanager
async def running_relay(engine: Engine, settings: Settings) -> AsyncIterator[OutboxRelay]:
    """The outbox relay for the duration of the block; on exit it finishes the sweep in progress, then stops."""
    senders = build_senders(settings)
    relay = OutboxRelay(
        engine,
        senders,
        interval=settings.notify_relay_interval,
        max_attempts=settings.notify_max_attempts,
        link_secret=settings.link_secret,
    )
    task = asyncio.create_task(relay.run(), name="notify-relay")
    try:
        yield relay
    finally:
        relay.stop()
        try:
            await task
        finally:
            for sender in senders.values():
                sender.close()
