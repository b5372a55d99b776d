"""The links notices carry, on both databases: an approval request mailed to an approver carries an approve link
whose token is stored nowhere (only its hash), works once, for that order, level and approver, until it expires
or the level is decided or moves on; every customer notice carries a signed tracking link that names one order
and ends. The journeys through a browser are in tests/browser/test_console_mail_links.py."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.records import RecordActivities
from core.config import Settings
from core.db import read_only, unit_of_work
from core.secrets import with_local_secrets
from dev.simulator.smtp_sink import SmtpSink
from models.contracts import AwaitingDecision, NotifyInput, RegisterOrderInput, TransitionInput
from models.status import OrderStatus, Role
from models.tables import ApprovalLink, Notification
from services.accounts import set_disabled
from services.links import (
    TOKEN_SLOT,
    LinkRefused,
    open_approval_link,
    release_approval_link,
    spend_approval_link,
    token_hash,
    tracking_order,
)
from services.notify.relay import build_senders, deliver_due
from services.users import add_user
from tests.support.orders import make_order

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # every row written now is due at NOW


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink) -> Settings:
    return mailing_settings(tmp_path, smtp_sink)


def mailing_settings(tmp_path: Path, smtp_sink: SmtpSink) -> Settings:
    """Settings whose mail goes to the sink and whose links point at https://orders.example.com."""
    values = {
        "state_dir": tmp_path,
        "smtp_host": smtp_sink.host,
        "smtp_port": smtp_sink.port,
        "smtp_starttls": False,
        "public_api_url": "https://orders.example.com",
    }
    return with_local_secrets(Settings.model_validate(values))


def awaiting_finance(engine: Engine, settings: Settings, seq: int = 2) -> str:
    """An order whose level 1 awaits finance, as the workflow's record steps leave it."""
    number = f"LINK-{uuid.uuid4().hex[:8].upper()}"
    records = RecordActivities(engine, settings)
    env = ActivityEnvironment()
    env.run(records.register_order, RegisterOrderInput(order=make_order(number), received_at=NOW))
    awaiting = AwaitingDecision(role=Role.FINANCE, level=1, until=NOW + timedelta(days=3), why=["big order"])
    transition(engine, settings, number, OrderStatus.AWAITING_APPROVAL, seq, awaiting)
    return number


def transition(
    engine: Engine,
    settings: Settings,
    number: str,
    status: OrderStatus,
    seq: int,
    awaiting: AwaitingDecision | None = None,
) -> None:
    inp = TransitionInput(order_no=number, seq=seq, status=status, at=NOW, detail="", awaiting=awaiting)
    ActivityEnvironment().run(RecordActivities(engine, settings).record_transition, inp)


def request_approval(engine: Engine, settings: Settings, number: str, kind: str = "approval_needed") -> None:
    inp = NotifyInput(key=f"{number}:{kind}:1", order_no=number, kind=kind, audience="role", role=Role.FINANCE)
    ActivityEnvironment().run(NotifyActivities(engine, settings).notify, inp)


def mailed_token(smtp_sink: SmtpSink, number: str, to: str = "fiona@staff.orderflow.test") -> str:
    mails = [m for m in smtp_sink.messages if number in m.subject and to in m.rcpt_tos]
    assert mails, f"no mail about {number} to {to}"
    found = re.search(r"https://orders\.example\.com/console/approve/([A-Za-z0-9_-]+)", mails[-1].text)
    assert found is not None, mails[-1].text
    return found[1]


def test_the_approval_mail_carries_a_link_whose_token_is_stored_only_as_a_hash(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink
) -> None:
    number = awaiting_finance(engine, settings)
    request_approval(engine, settings, number)
    request_approval(engine, settings, number)  # a retried activity: still one link
    with Session(engine) as session:
        [link] = session.exec(select(ApprovalLink).where(ApprovalLink.order_no == number)).all()
        notices = session.exec(select(Notification).where(Notification.order_no == number)).all()
    assert (link.level, link.role, link.approver) == (1, "finance", "fiona")
    assert link.expires_at == link.created_at + timedelta(hours=72)
    [mail_row] = [n for n in notices if n.channel == "email"]
    assert TOKEN_SLOT in mail_row.body  # the outbox holds no token
    [inbox_row] = [n for n in notices if n.channel == "internal"]
    assert "/console/approve/" not in inbox_row.body  # the inbox has its own buttons

    deliver_due(engine, build_senders(settings), NOW, link_secret=settings.link_secret)
    smtp_sink.wait_for(1)
    token = mailed_token(smtp_sink, number)
    assert token_hash(token) == link.token_hash
    with Session(engine) as session:
        stored = " ".join(str(v) for row in session.exec(select(Notification)).all() for v in row.model_dump().values())
    assert token not in stored
    with read_only(engine) as session:
        grant = open_approval_link(session, token, NOW)
    assert (grant.order_no, grant.level, grant.approver, grant.approver_role) == (number, 1, "fiona", "finance")


def test_a_link_works_once_and_a_failed_decision_gives_it_back(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink
) -> None:
    number = awaiting_finance(engine, settings)
    request_approval(engine, settings, number)
    deliver_due(engine, build_senders(settings), NOW, link_secret=settings.link_secret)
    smtp_sink.wait_for(1)
    token = mailed_token(smtp_sink, number)
    with read_only(engine) as session:
        grant = open_approval_link(session, token, NOW)
    assert spend_approval_link(engine, grant, NOW)
    assert not spend_approval_link(engine, grant, NOW)  # a second click, a second tab
    with read_only(engine) as session, pytest.raises(LinkRefused, match="works once") as refused:
        open_approval_link(session, token, NOW)
    assert refused.value.reason == "used"
    release_approval_link(engine, grant)  # the decision did not go through
    with read_only(engine) as session:
        assert open_approval_link(session, token, NOW).order_no == number


def test_a_link_is_void_once_the_level_is_decided_or_moves_on_and_ends_when_it_expires(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink
) -> None:
    decided = awaiting_finance(engine, settings)
    moved = awaiting_finance(engine, settings)
    request_approval(engine, settings, decided)
    request_approval(engine, settings, moved)
    deliver_due(engine, build_senders(settings), NOW, link_secret=settings.link_secret)
    smtp_sink.wait_for(2)
    decided_token, moved_token = mailed_token(smtp_sink, decided), mailed_token(smtp_sink, moved)

    with read_only(engine) as session:
        assert open_approval_link(session, decided_token, NOW + timedelta(hours=71)).level == 1
        with pytest.raises(LinkRefused, match="expired") as expired:
            open_approval_link(session, decided_token, NOW + timedelta(hours=72))
    assert expired.value.reason == "expired"

    transition(engine, settings, decided, OrderStatus.APPROVED, 3)  # decided (here, say, in the console)
    director = AwaitingDecision(role=Role.FINANCE_DIRECTOR, level=2, until=NOW + timedelta(days=3), why=[])
    transition(engine, settings, moved, OrderStatus.AWAITING_APPROVAL, 3, director)  # on to level 2
    with read_only(engine) as session:
        for token in (decided_token, moved_token):
            with pytest.raises(LinkRefused, match="no longer awaits") as void:
                open_approval_link(session, token, NOW)
            assert void.value.reason == "moved_on"
    with Session(engine) as session:
        links = session.exec(select(ApprovalLink).where(ApprovalLink.order_no.in_([decided, moved]))).all()  # type: ignore[attr-defined]
    assert all(link.voided_at == NOW for link in links)


def test_a_link_is_the_approvers_alone_while_they_may_decide(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink
) -> None:
    number = awaiting_finance(engine, settings)
    with unit_of_work(engine) as session:
        add_user(session, "fei", Role.FINANCE, email="fei@staff.orderflow.test")
        add_user(session, "sam", Role.SALES, email="sam@staff.orderflow.test")
    request_approval(engine, settings, number)
    deliver_due(engine, build_senders(settings), NOW, link_secret=settings.link_secret)
    smtp_sink.wait_for(2)
    fiona, fei = mailed_token(smtp_sink, number), mailed_token(smtp_sink, number, "fei@staff.orderflow.test")
    assert fiona != fei  # each approver their own link
    with read_only(engine) as session:
        assert open_approval_link(session, fei, NOW).approver == "fei"
        with pytest.raises(LinkRefused, match="not valid"):
            open_approval_link(session, fei[:-2] + ("AA" if not fei.endswith("AA") else "BB"), NOW)
        with pytest.raises(LinkRefused, match="not valid"):
            open_approval_link(session, "x" * 5000, NOW)
    with unit_of_work(engine) as session:
        set_disabled(session, "fei", True)
    with read_only(engine) as session, pytest.raises(LinkRefused, match="no longer yours"):
        open_approval_link(session, fei, NOW)


def test_customer_notices_carry_a_tracking_link_for_their_order_only(
    engine: Engine, settings: Settings, smtp_sink: SmtpSink
) -> None:
    number = awaiting_finance(engine, settings)
    inp = NotifyInput(
        key=f"{number}:dispatched:SF1",
        order_no=number,
        kind="dispatched",
        audience="customer",
        variables={"carrier": "sim", "tracking_no": "SF1"},
    )
    ActivityEnvironment().run(NotifyActivities(engine, settings).notify, inp)
    with Session(engine) as session:
        [mail, text] = sorted(
            session.exec(
                select(Notification).where(Notification.order_no == number, Notification.kind == "dispatched")
            ),
            key=lambda n: n.channel,
        )
    tokens = {re.search(r"https://orders\.example\.com/track/(\S+)", n.body)[1] for n in (mail, text)}  # type: ignore[index]
    [token] = tokens
    assert tracking_order(settings.link_secret, token, NOW) == number
    with pytest.raises(LinkRefused, match="expired"):
        tracking_order(settings.link_secret, token, NOW + settings.tracking_link_lifetime + timedelta(minutes=1))
    with pytest.raises(LinkRefused, match="not valid"):
        tracking_order("another secret", token, NOW)
