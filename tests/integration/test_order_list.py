"""The console's order list on both databases: every search field finds its order and nothing else, filters
combine, pages are stable, and a sales rep sees only their own orders (list and page alike)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from core.db import read_only, unit_of_work
from models.tables import PickList, Shipment
from services.queries.order_list import PAGE_SIZE, OrderFilter, may_see, order_list
from tests.support.read_model import DAY, add_order


def numbers(engine: Engine, flt: OrderFilter, name: str = "olga", role: str = "ops") -> list[str]:
    with read_only(engine) as session:
        return [row.order_no for row in order_list(session, flt, name=name, role=role).rows]


def test_each_search_field_finds_its_order(engine: Engine) -> None:
    add_order(engine, "LIST-A1", rep="alice", sku="SKU-1001")
    add_order(engine, "LIST-A2", rep="alice", sku="SKU-1018", customer="C-1005", days=1)
    add_order(engine, "LIST-B1", rep="bob", sku="SKU-1003", days=2)
    with unit_of_work(engine) as session:
        session.add(
            Shipment(
                order_no="LIST-B1",
                warehouse="WH-SH",
                carrier="sim",
                tracking_no="SF100200300",
                status="PENDING",
                dispatched_at=DAY,
            )
        )
    assert numbers(engine, OrderFilter(text="list-a")) == ["LIST-A2", "LIST-A1"]  # any case, newest first
    assert numbers(engine, OrderFilter(text="SKU-1018")) == ["LIST-A2"]  # a line's SKU
    assert numbers(engine, OrderFilter(text="SF1002")) == ["LIST-B1"]  # part of a tracking number
    assert numbers(engine, OrderFilter(text="C-1005")) == ["LIST-A2"]  # the customer id
    assert "LIST-A2" not in numbers(engine, OrderFilter(text="100%"))  # a LIKE wildcard is a plain character
    one_day = OrderFilter(text="LIST-", created_from=date(2026, 11, 21), created_to=date(2026, 11, 21))
    assert numbers(engine, one_day) == ["LIST-A2"]
    assert numbers(engine, OrderFilter(text="LIST-", created_from=date(2026, 11, 22))) == ["LIST-B1"]
    assert numbers(engine, OrderFilter(text="LIST-", warehouse="WH-SH")) == []  # nothing reserved or picked there
    with unit_of_work(engine) as session:
        session.add(PickList(order_no="LIST-A1", warehouse="WH-SH", lines=[]))
    assert numbers(engine, OrderFilter(text="LIST-", warehouse="WH-SH")) == ["LIST-A1"]
    assert numbers(engine, OrderFilter(text="LIST-", warehouse="WH-BJ")) == []
    assert numbers(engine, OrderFilter(text="LIST-", status="RECEIVED")) == ["LIST-B1", "LIST-A2", "LIST-A1"]
    assert numbers(engine, OrderFilter(text="LIST-", status="COMPLETED")) == []


def test_a_sales_rep_sees_only_her_own_orders(engine: Engine) -> None:
    add_order(engine, "LIST-A1", rep="alice", sku="SKU-1001")
    add_order(engine, "LIST-B1", rep="bob", sku="SKU-1001")
    assert numbers(engine, OrderFilter(text="LIST-"), "alice", "sales") == ["LIST-A1"]
    assert numbers(engine, OrderFilter(text="LIST-B1"), "alice", "sales") == []
    assert set(numbers(engine, OrderFilter(text="LIST-"), "fiona", "finance")) == {"LIST-A1", "LIST-B1"}
    with read_only(engine) as session:
        assert may_see(session, "LIST-A1", "alice", "sales") and not may_see(session, "LIST-B1", "alice", "sales")
        assert may_see(session, "LIST-B1", "olga", "ops") and not may_see(session, "NO-SUCH", "olga", "ops")


def test_pages_cover_every_order_once(engine: Engine) -> None:
    for i in range(PAGE_SIZE + 7):
        add_order(engine, f"LIST-P{i:03d}", rep="alice", sku="SKU-1001")  # all at the same moment: ties broken
    seen: list[str] = []
    with read_only(engine) as session:
        first = order_list(session, OrderFilter(text="LIST-P"), name="olga", role="ops")
        last = order_list(session, OrderFilter(text="LIST-P", page=99), name="olga", role="ops")  # past the end
    seen = [row.order_no for row in first.rows] + [row.order_no for row in last.rows]
    assert (first.total, first.pages, last.page) == (PAGE_SIZE + 7, 2, 2)
    assert sorted(seen) == sorted(f"LIST-P{i:03d}" for i in range(PAGE_SIZE + 7))
