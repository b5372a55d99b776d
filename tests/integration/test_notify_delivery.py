"""Notices leave the outbox: NotifyActivities.notify writes them, the relay sends them to a real SMTP server
(aiosmtpd sink) and a real HTTP SMS gateway (the simulator's router under uvicorn), both on loopback.

What the far ends actually received is the evidence: every assertion about "sent once" counts messages there.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.records import RecordActivities
from core.config import Settings
from core.db import make_engine, unit_of_work
from core.migrate import alembic_config
from dev.simulator.smtp_sink import SmtpSink, running_smtp_sink
from integrations.notify.base import OutgoingNotice
from integrations.notify.mail import message_id
from models.contracts import NotifyInput, RegisterOrderInput
from models.status import Role
from models.tables import Notification
from services.accounts import set_disabled
from services.notify.relay import SENDING_LEASE, build_senders, deliver_due, running_relay, sweep
from services.users import add_user, set_notice_channels
from tests.support.notify_peers import SmsGateway
from tests.support.orders import SHANGHAI, make_order

# The sweeps' clock: an hour ahead of the wall clock, so every row the tests write (next_attempt_at = the
# wall clock at insert) is due at NOW, and backoffs are exact offsets from it.
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
CUSTOMER_EMAIL = "buyer@xingchen.example"  # seeded customer C-1001, the sample orders' customer
PHONE = SHANGHAI["phone"]


def notify_settings(tmp_path: Path, smtp: SmtpSink | None, sms_url: str | None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path,
        "smtp_host": smtp.host if smtp else "",
        "smtp_port": smtp.port if smtp else 25,
        "smtp_starttls": False,
        "sms_gateway_url": sms_url or "",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink, sms_gateway: SmsGateway) -> Settings:
    return notify_settings(tmp_path, smtp_sink, sms_gateway.url)


def register(engine: Engine, settings: Settings, prefix: str = "NOTE") -> str:
    number = f"{prefix}-{uuid.uuid4().hex[:8].upper()}"
    order = make_order(number)
    ActivityEnvironment().run(
        RecordActivities(engine, settings).register_order, RegisterOrderInput(order=order, received_at=NOW)
    )
    return number


def dispatched(number: str, tracking_no: str = "SF1234567890") -> NotifyInput:
    return NotifyInput(
        key=f"{number}:dispatched:{tracking_no}",
        order_no=number,
        kind="dispatched",
        audience="customer",
        variables={"carrier": "kuaidi100", "tracking_no": tracking_no},
    )


def notify(engine: Engine, settings: Settings, inp: NotifyInput) -> int:
    return ActivityEnvironment().run(NotifyActivities(engine, settings).notify, inp)


def rows(engine: Engine, number: str | None = None) -> dict[str, Notification]:
    """channel → row (one order's rows), or key → row (every row)."""
    with Session(engine) as session:
        query = select(Notification).order_by(col(Notification.id))
        if number is None:
            return {n.key: n for n in session.exec(query).all()}
        return {n.channel: n for n in session.exec(query.where(Notification.order_no == number)).all()}


# --- the happy path, and idempotency --------------------------------------------------------------------------


def test_a_notice_is_delivered_as_one_email_and_one_sms(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    assert notify(engine, settings, dispatched(number)) == 2
    queued = rows(engine, number)
    assert {c: r.status for c, r in queued.items()} == {"email": "queued", "sms": "queued"}
    assert queued["email"].subject == f"Your order {number} is on its way"

    senders = build_senders(settings)
    assert deliver_due(engine, senders, NOW) == 2

    [mail] = smtp_sink.messages
    assert mail.rcpt_tos == (CUSTOMER_EMAIL,)
    assert mail.subject == f"Your order {number} is on its way"
    assert mail.text.startswith("Dear 张三,")
    assert f"{number} is on its way with kuaidi100, tracking number SF1234567890." in mail.text
    assert mail.message_id == message_id(queued["email"].key, settings.smtp_from)
    assert mail.message["Auto-Submitted"] == "auto-generated"
    [sms] = sms_gateway.received()
    assert sms.recipients == [PHONE] and sms.originator == settings.sms_originator
    text = f"Dear 张三, order {number} is on its way with kuaidi100, tracking number SF1234567890. "
    assert sms.body.startswith(text) and "/track/" in sms.body  # with the order's tracking page
    assert sms.reference == queued["sms"].key and sms.submissions == 1

    sent = rows(engine, number)
    for row in sent.values():
        assert (row.status, row.sent_at, row.attempts, row.next_attempt_at) == ("sent", NOW, 1, None)


def test_notify_twice_and_deliver_twice_sends_each_once(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    assert notify(engine, settings, dispatched(number)) == 2
    assert notify(engine, settings, dispatched(number)) == 0  # the activity retried: nothing new in the outbox
    senders = build_senders(settings)
    assert deliver_due(engine, senders, NOW) == 2
    assert deliver_due(engine, senders, NOW + timedelta(hours=1)) == 0
    assert len(smtp_sink.messages) == 1
    assert [m.submissions for m in sms_gateway.received()] == [1]


def test_staff_notices_reach_the_inbox_at_once_and_mail_or_text_as_each_person_chose(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    with unit_of_work(engine) as session:  # besides the seeded fiona (finance, e-mail on file, mail wanted)
        add_user(session, "fei", Role.FINANCE, email="fei@staff.orderflow.test", phone="+8613800000001")
        add_user(session, "fu", Role.FINANCE, email="fu@staff.orderflow.test", phone="+8613800000002")
        add_user(session, "gone", Role.FINANCE, email="gone@staff.orderflow.test")
        session.flush()
        set_notice_channels(session, "fei", email=False, sms=True)
        set_notice_channels(session, "fu", email=False, sms=False)  # the console only
        set_disabled(session, "gone", True)
    notice = NotifyInput(
        key=f"{number}:approval_needed:1", order_no=number, kind="approval_needed", audience="role", role=Role.FINANCE
    )
    assert notify(engine, settings, notice) == 5
    assert notify(engine, settings, notice) == 0  # a retried activity adds nothing
    with Session(engine) as session:
        found = session.exec(select(Notification).where(Notification.order_no == number)).all()
    assert sorted((n.channel, n.recipient) for n in found) == [
        ("email", "fiona@staff.orderflow.test"),
        ("internal", "fei"),
        ("internal", "fiona"),
        ("internal", "fu"),
        ("sms", "+8613800000001"),
    ]
    [inbox] = [n for n in found if n.recipient == "fiona"]
    assert inbox.body == f"Order {number} (398.00 CNY) awaits your finance decision."
    assert deliver_due(engine, build_senders(settings), NOW) == 5
    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ("fiona@staff.orderflow.test",) and number in mail.subject
    [text] = sms_gateway.received()
    assert text.recipients == ["8613800000001"] and number in text.body  # MessageBird: digits only
    with Session(engine) as session:
        settled = session.exec(select(Notification).where(Notification.order_no == number)).all()
    assert {(n.channel, n.status) for n in settled} == {("internal", "delivered"), ("email", "sent"), ("sms", "sent")}


def test_smtp_auth_is_used_when_configured(engine: Engine, tmp_path: Path, sms_gateway: SmsGateway) -> None:
    with running_smtp_sink(username="relay", password="s3cret") as sink:
        anonymous = notify_settings(tmp_path, sink, sms_gateway.url)
        number = register(engine, anonymous)
        notify(engine, anonymous, dispatched(number))
        deliver_due(engine, build_senders(anonymous), NOW)
        email = rows(engine, number)["email"]
        assert (email.status, email.attempts) == ("queued", 1)
        assert email.last_error is not None and "530 5.7.0 Authentication required" in email.last_error
        assert sink.messages == []

        authenticated = notify_settings(tmp_path, sink, sms_gateway.url, smtp_username="relay", smtp_password="s3cret")
        assert deliver_due(engine, build_senders(authenticated), NOW + timedelta(seconds=30)) == 1
        assert [m.authenticated_as for m in sink.messages] == ["relay"]


# --- failures: retries with backoff, giving up, refusals -----------------------------------------------------


def test_a_gateway_503_leaves_the_row_queued_and_a_later_sweep_sends_it(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    notify(engine, settings, dispatched(number))
    senders = build_senders(settings)
    sms_gateway.fail_next(1, status=503)

    assert deliver_due(engine, senders, NOW) == 1  # the e-mail
    sms = rows(engine, number)["sms"]
    assert (sms.status, sms.attempts, sms.sent_at) == ("queued", 1, None)
    assert sms.next_attempt_at == NOW + timedelta(seconds=30)
    assert sms.last_error is not None and "503" in sms.last_error
    assert sms_gateway.received() == []

    assert deliver_due(engine, senders, NOW + timedelta(seconds=10)) == 0  # backing off: not due yet
    assert deliver_due(engine, senders, NOW + timedelta(seconds=31)) == 1
    sms = rows(engine, number)["sms"]
    assert (sms.status, sms.attempts, sms.sent_at) == ("sent", 2, NOW + timedelta(seconds=31))
    assert [(m.reference, m.submissions) for m in sms_gateway.received()] == [(sms.key, 1)]
    assert len(smtp_sink.messages) == 1


def test_after_max_attempts_the_row_is_failed_and_never_sent(
    engine: Engine, settings: Settings, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    notify(engine, settings, dispatched(number))
    senders = build_senders(settings)
    sms_gateway.fail_next(3, status=502)
    at = NOW
    for attempt, backoff in ((1, 30), (2, 60)):
        deliver_due(engine, senders, at, max_attempts=3)
        sms = rows(engine, number)["sms"]
        assert (sms.status, sms.attempts) == ("queued", attempt)
        assert sms.next_attempt_at == at + timedelta(seconds=backoff)
        at = sms.next_attempt_at
    deliver_due(engine, senders, at, max_attempts=3)
    sms = rows(engine, number)["sms"]
    assert (sms.status, sms.attempts, sms.next_attempt_at, sms.sent_at) == ("failed", 3, None, None)
    assert sms.last_error is not None and sms.last_error.startswith(
        "gave up after 3 attempts: SMS gateway answered 502"
    )
    assert deliver_due(engine, senders, at + timedelta(days=1), max_attempts=3) == 0
    assert sms_gateway.received() == []  # the three faults were all it got


def test_a_refused_recipient_fails_at_once(engine: Engine, settings: Settings, smtp_sink: SmtpSink) -> None:
    number = register(engine, settings)
    notify(engine, settings, dispatched(number))
    smtp_sink.refused_recipients.add(CUSTOMER_EMAIL)
    deliver_due(engine, build_senders(settings), NOW)
    email = rows(engine, number)["email"]
    assert (email.status, email.attempts) == ("failed", 1)
    assert email.last_error is not None and "550 5.1.1" in email.last_error
    assert smtp_sink.messages == []


def test_an_unreachable_smtp_server_puts_the_other_emails_back_untried(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    numbers = [register(engine, settings) for _ in range(3)]
    for number in numbers:
        notify(engine, settings, dispatched(number))
    smtp_sink.stop()  # nothing listens on its port any more
    senders = build_senders(settings)
    assert deliver_due(engine, senders, NOW) == 3  # the SMS
    emails = [rows(engine, number)["email"] for number in numbers]
    assert [(e.status, e.attempts) for e in emails] == [("queued", 1), ("queued", 0), ("queued", 0)]
    assert {e.next_attempt_at for e in emails} == {NOW + timedelta(seconds=30)}  # the channel backs off as one
    assert emails[0].last_error is not None and "unreachable" in emails[0].last_error
    assert len(sms_gateway.received()) == 3


# --- configuration -------------------------------------------------------------------------------------------


def test_without_smtp_the_email_stays_unsent_until_smtp_is_configured(
    engine: Engine, tmp_path: Path, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    no_smtp = notify_settings(tmp_path, None, sms_gateway.url)
    number = register(engine, no_smtp)
    notify(engine, no_smtp, dispatched(number))
    assert deliver_due(engine, build_senders(no_smtp), NOW) == 1  # the SMS only
    email = rows(engine, number)["email"]
    assert (email.status, email.sent_at, email.attempts) == ("unsent", None, 0)
    assert email.last_error == "unsent: no SMTP configured (ORDERFLOW_SMTP_HOST is empty)"
    assert smtp_sink.messages == [] and len(sms_gateway.received()) == 1
    assert deliver_due(engine, build_senders(no_smtp), NOW + timedelta(hours=1)) == 0

    configured = notify_settings(tmp_path, smtp_sink, sms_gateway.url)
    assert deliver_due(engine, build_senders(configured), NOW + timedelta(hours=2)) == 1
    email = rows(engine, number)["email"]
    assert (email.status, email.last_error) == ("sent", None)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [(CUSTOMER_EMAIL,)]
    assert len(sms_gateway.received()) == 1


# --- concurrency and crashes ---------------------------------------------------------------------------------


def test_relays_running_at_once_send_each_row_once(
    engine: Engine, tmp_path: Path, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    """Four relays in four threads (as four worker processes would run them) over the same outbox, in small
    batches so their claims collide; on Postgres the claims skip each other's locked rows, on SQLite they
    serialise. Without SKIP LOCKED/BEGIN IMMEDIATE two relays claim the same rows and the far ends get them twice."""
    settings = notify_settings(tmp_path, smtp_sink, sms_gateway.url)
    numbers = [register(engine, settings, "CONC") for _ in range(12)]
    for number in numbers:
        notify(engine, settings, dispatched(number))
    start = threading.Barrier(4)

    def relay() -> int:
        senders = build_senders(settings)
        start.wait(timeout=10)
        delivered = 0
        try:
            while (done := sweep(engine, senders, NOW, batch=2)).claimed:
                delivered += done.delivered
        finally:
            for sender in senders.values():
                sender.close()
        return delivered

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: relay(), range(4), timeout=120))

    assert sum(results) == 24
    outbox = [row for row in rows(engine).values() if row.order_no in numbers]
    assert len(outbox) == 24 and {(r.status, r.attempts) for r in outbox} == {("sent", 1)}
    mails = smtp_sink.messages
    assert len(mails) == 12 and len({m.message_id for m in mails}) == 12
    texts = sms_gateway.received()
    assert len(texts) == 12 and {m.submissions for m in texts} == {1}


class Killed(BaseException):
    """The process dies in the middle of a send (nothing in the relay catches a BaseException)."""


class DiesMidSend:
    channel = "sms"

    def send(self, notice: OutgoingNotice) -> None:
        raise Killed

    def close(self) -> None:
        pass


def test_a_row_left_sending_by_a_dead_relay_is_sent_after_the_lease(
    engine: Engine, settings: Settings, sms_gateway: SmsGateway
) -> None:
    number = register(engine, settings)
    notify(engine, settings, dispatched(number))
    senders = build_senders(settings)
    with pytest.raises(Killed):
        sweep(engine, {**senders, "sms": DiesMidSend()}, NOW)
    sms = rows(engine, number)["sms"]
    assert (sms.status, sms.attempts, sms.next_attempt_at) == ("sending", 1, NOW + SENDING_LEASE)

    assert deliver_due(engine, senders, NOW + SENDING_LEASE - timedelta(seconds=1)) == 0  # still leased
    assert sms_gateway.received() == []
    assert deliver_due(engine, senders, NOW + SENDING_LEASE) == 1
    sms = rows(engine, number)["sms"]
    assert (sms.status, sms.attempts) == ("sent", 2)
    assert [m.reference for m in sms_gateway.received()] == [sms.key]


# --- the relay loop ------------------------------------------------------------------------------------------


async def test_running_relay_delivers_in_the_background_and_survives_a_bad_row(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink, sms_gateway: SmsGateway
) -> None:
    settings = settings.model_copy(update={"notify_relay_interval": 0.05})
    number = register(engine, settings)
    with Session(engine) as session:  # a notice no gateway will take: its failure must not stop the relay
        session.add(
            Notification(key=f"{number}:bad", order_no=number, kind="x", channel="sms", recipient="n/a", body="x")
        )
        session.commit()
    async with running_relay(engine, settings) as relay:
        await asyncio.to_thread(notify, engine, settings, dispatched(number))
        relay.wake()
        for _ in range(200):
            if smtp_sink.messages and sms_gateway.received():
                break
            await asyncio.sleep(0.05)
    assert len(smtp_sink.messages) == 1 and len(sms_gateway.received()) == 1
    assert relay.sweeps >= 1 and relay.delivered == 2
    bad = rows(engine)[f"{number}:bad"]
    assert bad.status == "failed" and bad.last_error == "not a phone number: 'n/a'"


# --- migration 0004 ------------------------------------------------------------------------------------------


def test_migration_0004_settles_existing_rows_without_sending_them(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
            for key, channel in (("old:internal", "internal"), ("old:email", "email"), ("old:sms", "sms")):
                connection.execute(
                    text(
                        "INSERT INTO notifications (key, order_no, kind, channel, recipient, body, created_at)"
                        " VALUES (:key, 'OLD-1', 'dispatched', :channel, 'someone', 'hello', :at)"
                    ),
                    {"key": key, "channel": channel, "at": NOW.replace(tzinfo=None)},
                )
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        old = rows(engine)
        assert {k: (r.status, r.attempts, r.subject, r.next_attempt_at) for k, r in old.items()} == {
            "old:internal": ("delivered", 0, "", None),
            "old:email": ("skipped", 0, "", None),
            "old:sms": ("skipped", 0, "", None),
        }
        assert old["old:internal"].sent_at == NOW and old["old:email"].sent_at is None
        assert deliver_due(engine, {}, NOW + timedelta(days=1)) == 0
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
            assert connection.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 3
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    before = {t.name for t in threading.enumerate()}
    yield
    leftover = {t.name for t in threading.enumerate()} - before
    assert not {name for name in leftover if name.startswith("smtp-sink")}
