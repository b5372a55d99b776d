"""What the console answers when input or Temporal is not as its pages expect, over HTTP on both databases: text the
database cannot store, numbers out of range and odd levels are refused as a page naming the field (never JSON,
never a 5xx) and change nothing; an approve link is not spent while Temporal is down and is given back when
Temporal fails during the decision; a requisition takes one receipt; a refund raced by two clerks is one refund."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.config import Settings
from core.db import read_only, unit_of_work
from dev.simulator.smtp_sink import SmtpSink
from entrypoints.api.app import create_app
from entrypoints.console.web import now
from models.status import OrderStatus, Role
from models.tables import PurchaseRequisition, Refund, RequisitionState, StockLot, StockReceipt
from services.errors import CommandError
from services.links import LinkRefused, open_approval_link
from services.notify.relay import build_senders, deliver_due
from services.refunds import record_refund
from tests.conftest import binary, session_data_converter
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.integration.test_console_finance import set_state
from tests.integration.test_mail_links import NOW, awaiting_finance, mailed_token, mailing_settings, request_approval
from tests.support.embedded_stack import free_port
from tests.support.read_model import add_order

NUL = "ok\x00then"


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


async def signed_in(web: httpx.AsyncClient, engine: Engine, name: str, role: Role) -> str:
    """Signs `name` in; the CSRF token of their session."""
    make_user(engine, name, role)
    await sign_in(web, name)
    return csrf_of(await web.get("/console"))


def assert_refused_page(answer: httpx.Response, code: int, *words: str) -> None:
    assert answer.status_code == code, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    for word in words:
        assert word in answer.text, answer.text


async def test_text_the_database_cannot_store_is_refused_by_field_and_changes_nothing(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    add_order(engine, "BAD-1", rep="alice", sku="SKU-1001")
    set_state(engine, "BAD-1", OrderStatus.CANCELLED, paid=True)  # a refund is due
    csrf = await signed_in(web, engine, "fin-bad", Role.FINANCE)
    posts = {
        "/console/finance/refunds/BAD-1": {"reference": NUL},
        "/console/finance/payments/BAD-1": {"reference": NUL},
        "/console/approvals/BAD-1": {"decision": "approve", "comment": NUL, "level": "1"},
        "/console/orders/BAD-1/cancel": {"reason": NUL},
    }
    for url, form in posts.items():
        answer = await web.post(url, data={"csrf": csrf, **form})
        field = next(iter(k for k in form if form[k] == NUL))
        assert_refused_page(answer, 422, "nothing was changed", field, "control character (U+0000)")
    with read_only(engine) as session:
        assert session.get(Refund, "BAD-1") is None

    answer = await web.post(
        "/console/approvals/bulk", data={"csrf": csrf, "orders": ["BAD-1|1"], "comment": NUL}
    )  # the bulk form names every ticked order, decides none
    assert answer.status_code == 409
    assert "BAD-1" in answer.text and "control character (U+0000)" in answer.text


async def test_numbers_out_of_range_and_odd_levels_are_refused_as_pages(web: httpx.AsyncClient, engine: Engine) -> None:
    csrf = await signed_in(web, engine, "ops-bad", Role.OPS)
    too_big = str(2**63)
    for url in (f"/console/pick-lists/{too_big}", f"/console/ops?received={too_big}", "/console/pick-lists/0"):
        assert_refused_page(await web.get(url), 422, "nothing was changed")
    for url in (f"/console/ops/requisitions/{too_big}/receive", f"/console/notices/{too_big}/read"):
        assert_refused_page(await web.post(url, data={"csrf": csrf}), 422, "nothing was changed")
    # A superscript two is a digit to str.isdigit, not a level: the ticked box is ignored, nothing decided.
    answer = await web.post("/console/approvals/bulk", data={"csrf": csrf, "orders": ["BAD-2|\u00b2"]})
    assert answer.status_code == 200 and "No order was ticked" in answer.text


async def test_a_requisition_takes_one_receipt_and_the_same_form_again_books_nothing(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    with unit_of_work(engine) as session:
        requisition = PurchaseRequisition(sku="SKU-1001", warehouse="WH-SH", qty=5, reason="backorder")
        session.add(requisition)
        session.flush()
        requisition_id = requisition.id
    csrf = await signed_in(web, engine, "ops-recv", Role.OPS)
    url = f"/console/ops/requisitions/{requisition_id}/receive"
    first = {"csrf": csrf, "qty": "5", "lot": "LOT-RQ-A", "bin": "A-01"}
    assert (await web.post(url, data=first)).status_code == 303
    assert (await web.post(url, data=first)).status_code == 303  # sent twice: booked once
    other_lot = {**first, "lot": "LOT-RQ-B"}  # another tab, another lot: the requisition is closed
    answer = await web.post(url, data=other_lot)
    assert answer.status_code == 409 and "no longer open" in answer.text
    with read_only(engine) as session:
        receipts = session.exec(select(StockReceipt).where(StockReceipt.sku == "SKU-1001")).all()
        lots = session.exec(select(StockLot.lot).where(StockLot.lot.in_(["LOT-RQ-A", "LOT-RQ-B"]))).all()  # type: ignore[attr-defined]
        closed = session.get(PurchaseRequisition, requisition_id)
    assert [r.lot for r in receipts if r.lot.startswith("LOT-RQ-")] == ["LOT-RQ-A"]
    assert list(lots) == ["LOT-RQ-A"]
    assert closed is not None and closed.state == RequisitionState.RECEIVED


def test_two_clerks_recording_the_same_refund_at_once_record_one(engine: Engine) -> None:
    add_order(engine, "BAD-RACE", rep="alice", sku="SKU-1001")
    set_state(engine, "BAD-RACE", OrderStatus.CANCELLED, paid=True)
    second: list[BaseException] = []

    def other_clerk() -> None:
        try:
            with unit_of_work(engine) as session:
                record_refund(session, "BAD-RACE", reference="TWO", by="fei", at=NOW)
        except CommandError as exc:
            second.append(exc)

    with unit_of_work(engine) as session:
        record_refund(session, "BAD-RACE", reference="ONE", by="fiona", at=NOW)  # inserted, not yet committed
        racer = threading.Thread(target=other_clerk)
        racer.start()
        time.sleep(0.5)  # the other clerk is now waiting on this transaction (Postgres: at its insert)
    racer.join(timeout=30)
    assert [str(e) for e in second] == ["the refund of order BAD-RACE is already recorded"]
    with read_only(engine) as session:
        refund = session.get(Refund, "BAD-RACE")
    assert refund is not None and refund.reference == "ONE"


async def approve_by_link(web: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await web.get(f"/console/approve/{token}")
    assert page.status_code == 200, page.text
    found = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert found is not None
    data = {"form_token": found[1], "decision": "approve", "comment": "from the mail"}
    return await web.post(f"/console/approve/{token}", data=data)


def still_open(engine: Engine, token: str) -> bool:
    try:
        with read_only(engine) as session:
            open_approval_link(session, token, now())
    except LinkRefused:
        return False
    return True


async def test_an_approve_link_is_not_spent_while_temporal_is_down_nor_when_temporal_fails_deciding(
    engine: Engine, tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    mail_settings = mailing_settings(tmp_path, smtp_sink)
    number = awaiting_finance(engine, mail_settings)
    request_approval(engine, mail_settings, number)
    deliver_due(engine, build_senders(mail_settings), NOW, link_secret=mail_settings.link_secret)
    smtp_sink.wait_for(1)
    token = mailed_token(smtp_sink, number)

    # Without the page's form token (a forged form on another site): refused, the link untouched.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(mail_settings, engine=engine)), base_url="http://web"
    ) as web:
        forged = await web.post(f"/console/approve/{token}", data={"decision": "approve", "form_token": "x" * 43})
        assert_refused_page(forged, 403, "did not come from this site")
    assert still_open(engine, token)

    # Temporal unreachable: the page says so, the link stays as it was.
    unreachable = mail_settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(unreachable, engine=engine)), base_url="http://web"
    ) as web:
        assert_refused_page(await approve_by_link(web, token), 503, "Nothing was changed")
    assert still_open(engine, token)

    # Temporal answered the connection, then went away mid-decision: the link is given back.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=session_data_converter()
    )
    gone: Client = env.client
    await env.shutdown()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(mail_settings, engine=engine, client=gone)), base_url="http://web"
    ) as web:
        assert_refused_page(await approve_by_link(web, token), 503, "Nothing was changed")
    assert still_open(engine, token)
