"""Finance's page over HTTP on both databases: only finance opens it; refunds due are the paid orders cancelled or
rejected, recorded once with a reference, and then gone from the list. (Confirming a payment goes through the
workflow: tests/browser/test_console_finance.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col

from core.config import Settings
from core.db import read_only, unit_of_work
from entrypoints.api.app import create_app
from models.status import OrderStatus, Role
from models.tables import Refund, SalesOrder
from services.errors import CommandError
from services.queries.finance import finance_counts, refunds_due
from services.refunds import record_refund
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order

NOW = datetime(2026, 12, 2, 9, tzinfo=UTC)


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def set_state(engine: Engine, number: str, status: OrderStatus, *, paid: bool) -> None:
    with unit_of_work(engine) as session:
        session.exec(
            update(SalesOrder).where(col(SalesOrder.order_no) == number).values(status=status.value, paid=paid)
        )


def test_refunds_due_are_paid_orders_that_were_cancelled_or_rejected_recorded_once(engine: Engine) -> None:
    for number, status, paid in (
        ("REF-1", OrderStatus.CANCELLED, True),
        ("REF-2", OrderStatus.REJECTED, True),
        ("REF-3", OrderStatus.CANCELLED, False),  # never paid: nothing to give back
        ("REF-4", OrderStatus.PICKING, True),  # still going
    ):
        add_order(engine, number, rep="alice", sku="SKU-1001")
        set_state(engine, number, status, paid=paid)
    with read_only(engine) as session:
        assert [r.order_no for r in refunds_due(session) if r.order_no.startswith("REF-")] == ["REF-1", "REF-2"]
        before = finance_counts(session).refunds
    with unit_of_work(engine) as session:
        record_refund(session, "REF-1", reference="  CMB-2026-0042 ", by="fiona", at=NOW)
    for number, words in (("REF-1", "already recorded"), ("REF-3", "no refund due"), ("REF-4", "no refund due")):
        with unit_of_work(engine) as session, pytest.raises(CommandError, match=words):
            record_refund(session, number, reference="X", by="fiona", at=NOW)
    with unit_of_work(engine) as session, pytest.raises(CommandError, match="reference"):
        record_refund(session, "REF-2", reference=" ", by="fiona", at=NOW)
    with Session(engine) as session:
        refund = session.get(Refund, "REF-1")
        assert refund is not None
        assert (refund.reference, refund.made_by, str(refund.amount), refund.currency) == (
            "CMB-2026-0042",
            "fiona",
            "10.00",
            "CNY",
        )
    with read_only(engine) as session:
        assert [r.order_no for r in refunds_due(session) if r.order_no.startswith("REF-")] == ["REF-2"]
        assert finance_counts(session).refunds == before - 1


async def test_only_finance_opens_the_finance_page_and_records_a_refund_there(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "fay", Role.FINANCE)
    make_user(engine, "sue", Role.SALES)
    add_order(engine, "REF-WEB", rep="alice", sku="SKU-1001")
    set_state(engine, "REF-WEB", OrderStatus.CANCELLED, paid=True)
    await sign_in(web, "sue")
    home = await web.get("/console")
    assert (await web.get("/console/finance")).status_code == 404
    assert (
        await web.post("/console/finance/refunds/REF-WEB", data={"csrf": csrf_of(home), "reference": "X"})
    ).status_code == 404
    await web.post("/console/sign-out", data={"csrf": csrf_of(home)})

    await sign_in(web, "fay")
    home = await web.get("/console")
    assert 'href="/console/finance#refunds"' in home.text  # the inbox points at the money to-dos
    finance = await web.get("/console/finance")
    assert finance.status_code == 200 and 'id="refund-REF-WEB"' in finance.text
    empty = await web.post("/console/finance/refunds/REF-WEB", data={"csrf": csrf_of(finance), "reference": ""})
    assert empty.status_code == 409 and 'id="refundref-REF-WEB-error"' in empty.text
    done = await web.post("/console/finance/refunds/REF-WEB", data={"csrf": csrf_of(finance), "reference": "ICBC-1"})
    assert done.status_code == 303
    after = await web.get(done.headers["location"])
    assert "REF-WEB refund recorded" in after.text and 'id="refund-REF-WEB"' not in after.text
