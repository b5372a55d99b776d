"""Ops' exceptions on both databases: what is stuck or broken is listed (and what is not, is not), only ops and
admin open the page, and a requisition's goods receipt is booked from it once, bad input beside its field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from core.config import Settings
from core.db import read_only, unit_of_work
from entrypoints.api.app import create_app
from models.status import OrderStatus, Role
from models.tables import OrderEvent, PurchaseRequisition, SalesOrder, Shipment, StockReceipt, TrackingEvent
from services.queries.ops import OrderException, ops_exception_count, ops_exceptions
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def order_in(engine: Engine, number: str, status: OrderStatus, *, ago: timedelta, detail: str = "") -> None:
    add_order(engine, number, rep="alice", sku="SKU-1001")
    with unit_of_work(engine) as session:
        at = NOW - ago
        session.exec(
            update(SalesOrder).where(col(SalesOrder.order_no) == number).values(status=status.value, updated_at=at)
        )
        session.add(OrderEvent(order_no=number, seq=2, status=status.value, at=at, detail=detail))


def world(engine: Engine) -> int:
    order_in(engine, "OPS-DX", OrderStatus.DELIVERY_EXCEPTION, ago=timedelta(hours=3), detail="parcel refused")
    order_in(engine, "OPS-FAILED", OrderStatus.FAILED, ago=timedelta(days=1), detail="carrier rejected the number")
    order_in(engine, "OPS-FAILED-OLD", OrderStatus.FAILED, ago=timedelta(days=30))
    order_in(engine, "OPS-BACK", OrderStatus.BACKORDERED, ago=timedelta(hours=5), detail="SKU-1001 short 3")
    order_in(engine, "OPS-PICK-LATE", OrderStatus.PICKING, ago=timedelta(hours=30))
    order_in(engine, "OPS-PICK-OK", OrderStatus.PICKING, ago=timedelta(hours=2))
    order_in(engine, "OPS-TRANSIT", OrderStatus.IN_TRANSIT, ago=timedelta(days=2))
    with unit_of_work(engine) as session:
        for number, tracking_no, news in (("OPS-TRANSIT", "QUIET1", 40), ("OPS-PICK-OK", "FRESH1", 1)):
            session.add(Shipment(order_no=number, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no,
                                 status="IN_TRANSIT", dispatched_at=NOW - timedelta(days=2)))  # fmt: skip
            session.add(TrackingEvent(carrier="sim", tracking_no=tracking_no, status="IN_TRANSIT",
                                      at=NOW - timedelta(hours=news)))  # fmt: skip
        requisition = PurchaseRequisition(sku="SKU-1002", warehouse="WH-BJ", qty=40, reason="reorder_point")
        session.add(requisition)
        session.flush()
        assert requisition.id is not None
        return requisition.id


def test_what_is_stuck_or_broken_is_listed_and_nothing_else(engine: Engine) -> None:
    world(engine)
    with read_only(engine) as session:
        found = ops_exceptions(session, NOW, quiet_after=timedelta(hours=24))

    def ours(items: list[OrderException]) -> list[str]:
        return [e.order_no for e in items if e.order_no.startswith("OPS-")]

    assert ours(found.delivery_exceptions) == ["OPS-DX"]
    assert found.delivery_exceptions[0].detail == "parcel refused"
    assert ours(found.failed) == ["OPS-FAILED"]  # the month-old failure has dropped off
    assert ours(found.backorders) == ["OPS-BACK"]
    assert ours(found.late) == ["OPS-PICK-LATE"]  # 30 h picking; 2 h is within its day, 2 d in transit within 5
    [late] = [e for e in found.late if e.order_no == "OPS-PICK-LATE"]
    assert late.late_by == timedelta(hours=6)
    assert [p.tracking_no for p in found.quiet_parcels if p.order_no.startswith("OPS-")] == ["QUIET1"]
    assert any(r.sku == "SKU-1002" for r in found.requisitions)
    with read_only(engine) as session:  # the inbox's badge counts what the page lists
        assert ops_exception_count(session, NOW, quiet_after=timedelta(hours=24)) == found.count


async def test_ops_books_a_requisitions_receipt_from_the_page_once(web: httpx.AsyncClient, engine: Engine) -> None:
    requisition = world(engine)
    make_user(engine, "sue", Role.SALES)
    make_user(engine, "otto", Role.OPS)
    await sign_in(web, "sue")
    home = await web.get("/console")
    assert (await web.get("/console/ops")).status_code == 404
    await web.post("/console/sign-out", data={"csrf": csrf_of(home)})

    await sign_in(web, "otto")
    home = await web.get("/console")
    assert 'href="/console/ops"' in home.text
    page = await web.get("/console/ops")
    assert page.status_code == 200
    for marker in ('id="x-delivery_exception-OPS-DX"', "parcel refused", 'id="quiet-QUIET1"', "OPS-PICK-LATE"):
        assert marker in page.text, marker
    url = f"/console/ops/requisitions/{requisition}/receive"
    bad = await web.post(url, data={"csrf": csrf_of(page), "qty": "lots", "lot": "L-NEW", "bin": ""})
    assert bad.status_code == 422 and f'id="receive-{requisition}-qty-error"' in bad.text
    with Session(engine) as session:
        assert session.exec(select(StockReceipt).where(StockReceipt.sku == "SKU-1002")).all() == []
    for _ in range(2):  # sent twice: booked once
        done = await web.post(url, data={"csrf": csrf_of(page), "qty": "40", "lot": "L-NEW", "bin": "B-02-01"})
        assert done.status_code == 303
    after = await web.get(done.headers["location"])
    assert "SKU-1002 received into WH-BJ" in after.text
    with Session(engine) as session:
        [receipt] = session.exec(select(StockReceipt).where(StockReceipt.sku == "SKU-1002")).all()
        assert (receipt.qty, receipt.lot, receipt.received_by) == (40, "L-NEW", "otto")
