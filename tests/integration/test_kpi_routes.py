"""GET /kpis and the console's cockpit over HTTP on both databases: filters as query parameters, bad questions
refused with why, every figure in the asker's scope (a sales rep's own orders), breakdowns, the orders behind a
figure (worst first), CSV exports, and cockpits people compose (theirs, shared with a role, nobody else's)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from core.config import Settings
from core.db import read_only
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import Dashboard
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order_with_history

# Fixed days well inside a period given by from/to (the wall clock does not matter).
START = datetime(2026, 11, 10, 9, tzinfo=UTC)
PERIOD = {"from": "2026-11-01", "to": "2026-11-30"}
FLOW = ["RECEIVED", "APPROVED", "ALLOCATED", "PICKING"]


@pytest.fixture
async def http(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://of") as client:
        yield client


def _orders(engine: Engine) -> None:
    """amy: two orders (picking waited 60 and 240 min after allocation); ben: one (picking at 10 min)."""
    for number, rep, approved_after in (("SO-K-1", "amy", 60), ("SO-K-2", "amy", 240), ("SO-K-3", "ben", 10)):
        steps = [("RECEIVED", 0), ("APPROVED", approved_after), ("ALLOCATED", approved_after + 1),
                 ("PICKING", approved_after + 2)]  # fmt: skip
        add_order_with_history(engine, number, steps, rep=rep, start=START, lines=[("SKU-1001", 2, "100.00")])


async def test_kpis_take_filters_and_count_only_the_askers_scope(engine: Engine, http: httpx.AsyncClient) -> None:
    _orders(engine)
    ops = {"Authorization": f"Bearer {make_user(engine, 'olga-k', Role.OPS)}"}
    amy = {"Authorization": f"Bearer {make_user(engine, 'amy', Role.SALES)}"}
    everything = (await http.get("/kpis", params={**PERIOD, "kpi": "order_count,sales_amount"}, headers=ops)).json()
    assert everything["kpis"]["order_count"]["value"] == 3
    assert everything["kpis"]["sales_amount"]["value"] == "600.00"  # money as a decimal string
    assert everything["previous_period"] == {"first": "2026-10-02", "last": "2026-10-31"}
    assert everything["kpis"]["order_count"]["previous"] == 0 and everything["kpis"]["order_count"]["trend"] == "up"
    own = (await http.get("/kpis", params={**PERIOD, "kpi": "order_count,sales_amount"}, headers=amy)).json()
    assert own["scope"] == "orders of sales rep amy"
    assert own["kpis"]["order_count"]["value"] == 2 and own["kpis"]["sales_amount"]["value"] == "400.00"
    # A sales rep asking for another rep's orders gets none of them: the scope is a WHERE, not a default.
    other = await http.get("/kpis", params={**PERIOD, "sales_rep": "ben", "kpi": "order_count"}, headers=amy)
    assert other.json()["kpis"]["order_count"]["value"] == 0
    narrowed = await http.get("/kpis", params={**PERIOD, "sales_rep": "ben", "kpi": "order_count"}, headers=ops)
    assert narrowed.json()["kpis"]["order_count"]["value"] == 1 and narrowed.json()["filters"] == {"sales_rep": "ben"}

    # Dwell in APPROVED by stage: 1 min each; RECEIVED waited 60, 240 and 10 min → p90 240 min.
    chart = (await http.get("/kpis/stage_dwell_p90", params={**PERIOD, "by": "stage"}, headers=ops)).json()
    by_stage = {row["key"]: row["value"] for row in chart["rows"]}
    assert by_stage == {"RECEIVED": 240 * 60.0, "APPROVED": 60.0, "ALLOCATED": 60.0}
    behind = await http.get(
        "/kpis/stage_dwell_p90/orders", params={**PERIOD, "by": "stage", "group": "RECEIVED"}, headers=ops
    )
    assert [o["order_no"] for o in behind.json()["orders"]] == ["SO-K-2", "SO-K-1", "SO-K-3"]  # slowest first
    mine = await http.get(
        "/kpis/stage_dwell_p90/orders", params={**PERIOD, "by": "stage", "group": "RECEIVED"}, headers=amy
    )
    assert [o["order_no"] for o in mine.json()["orders"]] == ["SO-K-2", "SO-K-1"]


@pytest.mark.parametrize(
    ("path", "params", "why"),
    [
        ("/kpis", {"period": "2w"}, "is not one of"),
        ("/kpis", {"from": "2026-11-30", "to": "2026-11-01"}, "before it starts"),
        ("/kpis", {"from": "2025-01-01", "to": "2026-11-30"}, "at most 366 days"),
        ("/kpis", {"from": "yesterday"}, "is not a date"),
        ("/kpis", {"kpi": "happiness"}, "no KPI 'happiness'"),
        ("/kpis", {"currency": "yuan"}, "is not a currency code"),
        ("/kpis/sales_amount", {"by": "stage"}, "cannot be broken down by 'stage'"),
        ("/kpis/stock_units/orders", {}, "counts stock, not orders"),
    ],
)
async def test_a_question_that_cannot_be_answered_is_refused_with_why(
    engine: Engine, http: httpx.AsyncClient, path: str, params: dict[str, str], why: str
) -> None:
    ops = {"Authorization": f"Bearer {make_user(engine, 'olga-q', Role.OPS)}"}
    answer = await http.get(path, params=params, headers=ops)
    assert answer.status_code == 422 and why in answer.json()["detail"], answer.text


async def test_the_cockpit_pages_charts_drill_down_and_exports(engine: Engine, http: httpx.AsyncClient) -> None:
    _orders(engine)
    make_user(engine, "olga-c", Role.OPS)
    await sign_in(http, "olga-c")
    query = "from=2026-11-01&to=2026-11-30"
    board = await http.get(f"/console/cockpit/fulfilment?{query}")
    assert board.status_code == 200 and 'data-kpi="cycle_time_p90"' in board.text
    assert "/console/static/echarts-6.1.0.common.min.js" in board.text  # vendored, never a CDN
    chart = (await http.get(f"/console/cockpit/data/stage_dwell_p90?{query}&by=stage")).json()
    received = next(r for r in chart["rows"] if r["key"] == "RECEIVED")
    assert received["shown"] == "4h 00m"
    assert received["orders"] == f"/console/cockpit/orders?{query}&kpi=stage_dwell_p90&by=stage&group=RECEIVED"
    listed = await http.get(received["orders"])
    assert listed.status_code == 200
    assert listed.text.index("SO-K-2") < listed.text.index("SO-K-1") < listed.text.index("SO-K-3")
    exported = await http.get(received["orders"] + "&csv=1")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert [r[0] for r in rows] == ["order_no", "SO-K-2", "SO-K-1", "SO-K-3"]
    chart_csv = await http.get(f"/console/cockpit/data/stage_dwell_p90.csv?{query}&by=stage")
    assert chart_csv.headers["content-type"].startswith("text/csv")
    assert ["RECEIVED", "14400.0", "4h 00m"] in list(csv.reader(io.StringIO(chart_csv.text)))
    cards = (await http.get(f"/console/cockpit/cards/sales?{query}")).json()["cards"]
    assert cards["order_count"]["shown"] == "3" and cards["sales_amount"]["shown"] == "600.00"
    bad = await http.get("/console/cockpit/fulfilment?period=2w")
    assert bad.status_code == 422 and "is not one of" in bad.text


async def test_a_composed_cockpit_is_its_owners_and_its_roles_to_see_and_only_its_owners_to_change(
    engine: Engine, http: httpx.AsyncClient
) -> None:
    for name, role in (("amy", Role.SALES), ("ben", Role.SALES), ("wang-c", Role.WAREHOUSE)):
        make_user(engine, name, role)
    await sign_in(http, "amy")
    form = await http.get("/console/cockpit/new")
    fields = {"csrf": csrf_of(form), "name": "Week of the team", "cards": ["sales_amount", "order_count"],
              "chart_kpi_0": "sales_amount", "chart_by_0": "product_line", "chart_kind_0": "pie",
              "shared_role": "sales", "filter_period": "7d"}  # fmt: skip
    wrong = await http.post("/console/cockpit/new", data={**fields, "chart_by_0": "stage"})
    assert wrong.status_code == 422 and "cannot be broken down by stage" in wrong.text
    assert (await http.post("/console/cockpit/new", data={**fields, "csrf": "forged"})).status_code == 403
    with read_only(engine) as session:
        assert session.exec(select(Dashboard)).all() == []  # neither the bad one nor the forged one
    made = await http.post("/console/cockpit/new", data=fields)
    assert made.status_code == 303
    slug = made.headers["location"].rsplit("/", 1)[1]
    shown = await http.get(f"/console/cockpit/{slug}")
    assert "Week of the team" in shown.text and shown.text.count('class="kpi-card"') == 2
    assert "period=7d" in shown.text  # its default filter is in its chart's data link

    await sign_in(http, "ben")  # the same role: sees it, may not change or delete it
    assert (await http.get(f"/console/cockpit/{slug}")).status_code == 200
    assert (await http.get(f"/console/cockpit/{slug}/edit")).status_code == 404
    csrf = csrf_of(await http.get("/console/cockpit/new"))
    assert (await http.post(f"/console/cockpit/{slug}/delete", data={"csrf": csrf})).status_code == 404
    await sign_in(http, "wang-c")  # another role: not even its name
    assert (await http.get(f"/console/cockpit/{slug}")).status_code == 404

    await sign_in(http, "amy")
    csrf = csrf_of(await http.get("/console/cockpit/new"))
    assert (await http.post(f"/console/cockpit/{slug}/delete", data={"csrf": csrf})).status_code == 303
    with read_only(engine) as session:
        assert session.exec(select(Dashboard)).all() == []
