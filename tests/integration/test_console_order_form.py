"""The sales rep's order form over HTTP on both databases (no Temporal: every case here is refused before anything
starts): who may open it, and bad input re-shown beside its field with nothing written. The journey that submits
and cancels is in tests/browser/test_console_sales.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from core.config import Settings
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import SalesOrder
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def filled(page: httpx.Response, **fields: str) -> dict[str, str]:
    order_no = re.search(r'name="order_no" value="([^"]+)"', page.text)
    assert order_no is not None
    form = {
        "csrf": csrf_of(page),
        "order_no": order_no[1],
        "customer_id": "C-1001",
        "payment_method": "credit",
        "order_type": "standard",
        "ship_name": "张三",
        "ship_phone": "13800000000",
        "ship_region": "华东",
        "ship_province": "上海",
        "ship_city": "上海",
        "ship_address": "浦东新区 XX 路 1 号",
        "ship_postcode": "200120",
        "sku_1": "SKU-1001",
        "qty_1": "2",
    }
    form.update(fields)
    return form


def field_error(page: httpx.Response, name: str) -> str:
    found = re.search(rf'id="{name}-error">([^<]*)<', page.text)
    assert found is not None, f"no error beside {name}"
    return found[1]


async def test_only_those_who_submit_orders_open_the_form(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "sue", Role.SALES)
    make_user(engine, "fay", Role.FINANCE)
    await sign_in(web, "sue")
    form = await web.get("/console/orders/new")
    assert form.status_code == 200 and 'name="sku_5"' in form.text
    assert 'name="sales_rep"' not in form.text  # a rep submits their own orders only
    listing = await web.get("/console/orders")
    assert 'href="/console/orders/new"' in listing.text
    await web.post("/console/sign-out", data={"csrf": csrf_of(listing)})
    await sign_in(web, "fay")
    refused = await web.get("/console/orders/new")
    assert refused.status_code == 404 and "not for your role" in refused.text
    assert 'href="/console/orders/new"' not in (await web.get("/console/orders")).text


async def test_bad_input_is_shown_beside_its_field_and_nothing_is_submitted(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "sue", Role.SALES)
    await sign_in(web, "sue")
    page = await web.get("/console/orders/new")
    cases = [
        ({"qty_1": "two"}, "qty_1", "valid integer"),
        ({"qty_1": "0"}, "qty_1", "greater than 0"),
        ({"price_1": "12,50"}, "price_1", "decimal"),
        ({"price_1": "1.00"}, "price_1", "outside"),  # the workflow's own price rule, checked first
        ({"ship_phone": "", "ship_city": ""}, "ship_phone", "required"),
        ({"customer_id": "C-NOPE"}, "customer_id", "unknown customer C-NOPE"),
        ({"sku_1": "", "qty_1": ""}, "sku_1", "at least one line"),
        ({"sku_2": "SKU-1001", "qty_2": "1"}, "sku_2", "more than one line"),
        ({"sku_1": "", "qty_1": "3"}, "sku_1", "choose a product"),
    ]
    for fields, name, words in cases:
        answer = await web.post("/console/orders/new", data=filled(page, **fields))
        assert answer.status_code == 422, (fields, answer.status_code)
        assert words in field_error(answer, name), (fields, field_error(answer, name))
        assert "Nothing was submitted" in answer.text
    both = await web.post("/console/orders/new", data=filled(page, ship_phone="", ship_city=""))
    assert field_error(both, "ship_city") == "required"  # every missing field, not only the first
    kept = await web.post("/console/orders/new", data=filled(page, qty_1="two", ship_name="李四"))
    assert 'value="李四"' in kept.text  # what was typed is kept
    with Session(engine) as session:
        assert session.exec(select(SalesOrder).where(SalesOrder.sales_rep == "sue")).all() == []


async def test_a_rep_cannot_cancel_another_reps_order(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "sue", Role.SALES)
    add_order(engine, "FORM-OTHER", rep="bob", sku="SKU-1001")
    add_order(engine, "FORM-MINE", rep="sue", sku="SKU-1001")
    await sign_in(web, "sue")
    mine = await web.get("/console/orders/FORM-MINE")
    assert mine.status_code == 200 and "Cancel order" in mine.text and "/track/" in mine.text
    other = await web.post("/console/orders/FORM-OTHER/cancel", data={"csrf": csrf_of(mine), "reason": "mine now"})
    assert other.status_code == 404
    no_reason = await web.post("/console/orders/FORM-MINE/cancel", data={"csrf": csrf_of(mine), "reason": " "})
    assert no_reason.status_code == 422 and "Say why" in no_reason.text
