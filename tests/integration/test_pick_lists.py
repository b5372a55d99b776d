"""The warehouse's pick lists on both databases: each person sees and handles only their warehouses' open lists,
and marking one picked is once, and never for a list that has closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from core.db import read_only, unit_of_work
from models.status import Role
from models.tables import PickList
from services.errors import CommandError
from services.picking import mark_picked
from services.queries.pick_lists import open_pick_lists, pick_list_page
from services.users import add_user, set_warehouses, warehouses_of

NOW = datetime(2026, 12, 2, 8, tzinfo=UTC)
LINE = {"bin": "A-01-01", "sku": "SKU-1001", "lot": "L1", "qty": 2, "line_no": 1}


def lists(engine: Engine) -> dict[str, int]:
    ids: dict[str, int] = {}
    with unit_of_work(engine) as session:
        for order_no, warehouse, state in (("PL-1", "WH-SH", "issued"), ("PL-2", "WH-BJ", "issued"),
                                           ("PL-3", "WH-SH", "voided")):  # fmt: skip
            row = PickList(order_no=order_no, warehouse=warehouse, lines=[LINE], state=state)
            session.add(row)
            session.flush()
            ids[order_no] = row.id or 0
        add_user(session, "wu", Role.WAREHOUSE)
        session.flush()
        set_warehouses(session, "wu", ["WH-SH"])
        add_user(session, "nowhere", Role.WAREHOUSE)
    return ids


def test_each_person_sees_the_open_lists_of_their_warehouses(engine: Engine) -> None:
    ids = lists(engine)
    with read_only(engine) as session:
        assert warehouses_of(session, "wu") == ["WH-SH"]
        assert [t.order_no for t in open_pick_lists(session, "wu", "warehouse") if t.order_no.startswith("PL-")] == [
            "PL-1"
        ]
        assert open_pick_lists(session, "nowhere", "warehouse") == []
        assert open_pick_lists(session, "alice", "sales") == []
        assert {"PL-1", "PL-2"} <= {t.order_no for t in open_pick_lists(session, "olga", "ops")}
        assert pick_list_page(session, ids["PL-1"], "wu", "warehouse") is not None
        assert pick_list_page(session, ids["PL-2"], "wu", "warehouse") is None  # another warehouse's
        assert pick_list_page(session, ids["PL-1"], "alice", "sales") is None
        assert pick_list_page(session, 10**9, "olga", "ops") is None


def test_marking_picked_is_once_and_only_while_the_list_is_open(engine: Engine) -> None:
    ids = lists(engine)
    with unit_of_work(engine) as session:
        assert mark_picked(session, ids["PL-1"], "wu", NOW)
    with unit_of_work(engine) as session:
        assert mark_picked(session, ids["PL-1"], "other", NOW)  # still open: fine, but the first picker stays
        assert not mark_picked(session, ids["PL-3"], "wu", NOW)  # voided: the order was cancelled
    with read_only(engine) as session:
        page = pick_list_page(session, ids["PL-1"], "wu", "warehouse")
        voided = session.get(PickList, ids["PL-3"])
    assert page is not None and (page["picked_by"], page["picked_at"]) == ("wu", NOW)
    assert voided is not None and voided.picked_by is None


def test_a_user_is_put_only_in_warehouses_that_exist(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        add_user(session, "wu2", Role.WAREHOUSE)
        session.flush()
        with pytest.raises(CommandError, match="unknown warehouse WH-XX"):
            set_warehouses(session, "wu2", ["WH-SH", "WH-XX"])
