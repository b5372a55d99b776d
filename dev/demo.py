"""`orderflow demo`: submit varied sample orders through the API (dev/demo_intake.py) and play the
approvers and the warehouse until every order reaches its end state, through the same client paths as the CLI
(decide, pay, dispatch, cancel). Live progress with rich; a final table with stage times and the Temporal UI link."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import Engine, func
from sqlmodel import select
from temporalio.client import Client

from core.config import Settings
from core.db import read_only, unit_of_work
from dev.demo_intake import DEMO_INTEGRATION_USER, integration_token, send
from dev.demo_money import settle_money
from dev.seed import DEMO_USERS, reset_demo_passwords, seed, seeded_stock
from models.contracts import OrderState
from models.order import Order
from models.status import TERMINAL_STATUSES, OrderStatus, Role
from models.tables import Notification
from services import order_commands, stock
from services.errors import CommandError
from services.queries.inventory import inventory_view
from services.queries.kpis import stage_durations
from services.queries.order_view import order_view
from services.stock import Receipt

APPROVERS = {Role.FINANCE: "fiona", Role.FINANCE_DIRECTOR: "derek"}
WAREHOUSE_USER = "wang"

ADDRESSES: dict[str, dict[str, str]] = {
    "华东": {"name": "张三", "phone": "13800000001", "region": "华东", "province": "上海", "city": "上海",
             "address": "浦东新区世纪大道 100 号", "postcode": "200120"},
    "华北": {"name": "李四", "phone": "13900000002", "region": "华北", "province": "北京", "city": "北京",
             "address": "朝阳区建国路 88 号", "postcode": "100022"},
    "华南": {"name": "王五", "phone": "13700000003", "region": "华南", "province": "广东", "city": "广州",
             "address": "天河区珠江新城 8 号", "postcode": "510623"},
    "华中": {"name": "赵六", "phone": "13600000004", "region": "华中", "province": "湖北", "city": "武汉",
             "address": "洪山区光谷大道 77 号", "postcode": "430074"},
    "西南": {"name": "钱七", "phone": "13500000005", "region": "西南", "province": "四川", "city": "成都",
             "address": "高新区天府大道 1 号", "postcode": "610041"},
}  # fmt: skip


@dataclass
class Scenario:
    label: str
    customer: str
    region: str
    lines: list[tuple[str, int, str]]
    expected: OrderStatus = OrderStatus.COMPLETED
    sales_rep: str = "alice"
    channel: str = "web"
    order_type: str = "standard"
    payment: dict[str, Any] = field(default_factory=lambda: {"method": "credit", "paid": False})
    cancel_when_picking: bool = False
    carrier: str = "sim"
    journey: str | None = None  # a carrier-simulator journey other than the happy one (POST /sim/journeys)
    left_for_you: bool = False  # the demo does not play its approver: a person approves it in the console


SCENARIOS: list[Scenario] = [
    Scenario("auto-approved", "C-1001", "华东", [("SKU-1001", 2, "199.00"), ("SKU-1006", 1, "129.00")]),
    Scenario("17TRACK, batch-polled", "C-1002", "华北", [("SKU-1002", 3, "499.00")], sales_rep="bob", carrier="17track"),  # noqa: E501
    Scenario("auto-approved", "C-1003", "华南", [("SKU-1013", 2, "459.00"), ("SKU-1016", 10, "39.00")]),
    Scenario("auto-approved", "C-1004", "华中", [("SKU-1005", 1, "1299.00")], channel="crm"),
    Scenario("auto-approved, price within 5%", "C-1001", "华东", [("SKU-1003", 2, "1850.00")]),
    # Channel orders arrive as the platform's signed webhook; their customer and rep come from the channel settings.
    Scenario("Shopify webhook", "C-1001", "华北", [("SKU-1014", 4, "599.00")], channel="shopify", sales_rep="bob"),
    Scenario("Taobao trade push", "C-1003", "华南", [("SKU-1021", 5, "259.00")], channel="taobao", sales_rep="bob"),
    Scenario("split across warehouses, finance", "C-1001", "华东", [("SKU-1016", 600, "39.00")]),
    Scenario("needs finance", "C-1002", "华北", [("SKU-1018", 1, "12999.00")], sales_rep="bob"),
    Scenario("needs finance", "C-1004", "华中", [("SKU-1010", 5, "4599.00")]),
    Scenario("needs finance + director", "C-1001", "华东", [("SKU-1018", 5, "12999.00")]),
    Scenario("new customer: prepay first", "C-2001", "华东", [("SKU-1007", 2, "399.00")]),
    Scenario("sample: skips finance", "C-1003", "华南", [("SKU-1017", 2, "8999.00")], order_type="sample"),
    Scenario("credit hold, then approved", "C-1005", "西南", [("SKU-1008", 3, "1599.00")], sales_rep="bob"),
    Scenario("bad SKU: rejected", "C-1001", "华东", [("SKU-9999", 1, "100.00")], expected=OrderStatus.REJECTED),
    Scenario(
        "cancelled after allocation",
        "C-1002",
        "华北",
        [("SKU-1011", 1, "2199.00")],
        expected=OrderStatus.CANCELLED,
        cancel_when_picking=True,
    ),
    Scenario(
        "prepaid and paid", "C-1004", "华中", [("SKU-1019", 2, "3299.00")], payment={"method": "prepaid", "paid": True}
    ),
    Scenario(
        "cash on delivery", "C-1003", "华南", [("SKU-1020", 1, "899.00")], payment={"method": "cod", "paid": False}
    ),
    Scenario(
        "prepaid, cancelled: refunded", "C-1004", "华中", [("SKU-1009", 1, "2999.00")],
        payment={"method": "prepaid", "paid": True}, expected=OrderStatus.CANCELLED, cancel_when_picking=True,
    ),
    Scenario(
        "17TRACK, batch-polled", "C-1001", "华东", [("SKU-1004", 2, "359.00"), ("SKU-1015", 10, "89.00")],
        carrier="17track",
    ),
    Scenario(
        "Kuaidi100: failed attempt, delivered next run", "C-1004", "华中", [("SKU-1012", 1, "699.00")],
        carrier="kuaidi100", journey="delivery_failure",
    ),
    Scenario("AfterShip", "C-1002", "华北", [("SKU-1023", 1, "1799.00")], sales_rep="bob", carrier="aftership"),
    Scenario(
        "refused at the door: parcel returned", "C-1003", "华南", [("SKU-1022", 2, "1199.00")],
        expected=OrderStatus.FAILED, journey="refusal",
    ),
]  # fmt: skip


@dataclass
class Tracked:
    scenario: Scenario
    order: Order
    status: str = "SUBMITTED"
    note: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def done(self) -> bool:
        if self.scenario.left_for_you:
            return self.status == self.scenario.expected or self.status in TERMINAL_STATUSES
        return self.status in TERMINAL_STATUSES


# One more order than asked for, left waiting for finance: whoever runs the demo approves it in the console.
FOR_YOU = Scenario(
    "waits for you: approve it in the console", "C-1004", "华中", [("SKU-1018", 1, "12999.00")],
    expected=OrderStatus.AWAITING_APPROVAL, left_for_you=True,
)  # fmt: skip


def build_orders(count: int, run_tag: str) -> list[Tracked]:
    tracked = []
    for index in range(count + 1):
        if index == count:
            scenario = FOR_YOU
        else:
            scenario = SCENARIOS[index % len(SCENARIOS)] if index < len(SCENARIOS) else SCENARIOS[index % 7]
        order = Order.model_validate(
            {
                "order_no": f"SO-{run_tag}-{index + 1:03d}",
                "channel": scenario.channel,
                "customer_id": scenario.customer,
                "sales_rep": scenario.sales_rep,
                "order_type": scenario.order_type,
                "payment": scenario.payment,
                "ship_to": ADDRESSES[scenario.region],
                "lines": [{"sku": s, "qty": q, "unit_price": Decimal(p)} for s, q, p in scenario.lines],
            }
        )
        tracked.append(Tracked(scenario, order))
    return tracked


async def _set_journey(settings: Settings, tracking_no: str, journey: str) -> None:
    """Tell the carrier simulator how this parcel's trip goes (before the carrier first sees it)."""
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(
            f"{settings.carrier_sim_url.rstrip('/')}/sim/journeys",
            json={"tracking_no": tracking_no, "journey": journey},
        )
    if answer.status_code not in (200, 201):
        raise CommandError(f"carrier simulator refused journey {journey!r}: HTTP {answer.status_code}")


async def act(client: Client, engine: Engine, settings: Settings, item: Tracked, state: OrderState) -> None:
    """Play the people the order is waiting for."""
    order_no = item.order.order_no
    if state.pending_approval is not None and item.scenario.left_for_you:
        return  # a person decides this one, in the console
    if state.pending_approval is not None:
        user = APPROVERS.get(state.pending_approval.role, "fiona")
        await order_commands.decide(
            client,
            engine,
            order_no,
            user=user,
            decision="approve",
            comment="demo approval",
            secret=settings.decision_secret,
        )
        item.note = f"approved by {user}"
    elif state.status == OrderStatus.AWAITING_PAYMENT:
        await order_commands.pay(client, order_no, reference=f"PAY-{order_no}")
        item.note = "payment received"
    elif state.status == OrderStatus.PICKING and item.scenario.cancel_when_picking:
        await order_commands.cancel(client, order_no, reason="customer changed their mind", by="alice")
        item.note = "cancelled by the customer"
    elif state.status == OrderStatus.PICKING:
        carrier = item.scenario.carrier
        for index, warehouse in enumerate(state.awaiting_dispatch, start=1):
            tracking_no = f"{carrier[:3].upper()}{order_no.replace('-', '')[-9:]}{index}"
            if item.scenario.journey:
                await _set_journey(settings, tracking_no, item.scenario.journey)
            await order_commands.dispatch(
                client, order_no, warehouse=warehouse, carrier=carrier, tracking_no=tracking_no, by=WAREHOUSE_USER
            )
            item.note = f"dispatched {carrier} {tracking_no}"


def progress_table(items: list[Tracked]) -> Table:
    table = Table(title="orderflow demo: live")
    for column in ("order", "scenario", "status", "note", "s"):
        table.add_column(column)
    for item in items:
        colour = "green" if item.status == item.scenario.expected else ("red" if item.done else "yellow")
        elapsed = (item.finished or time.monotonic()) - item.started
        table.add_row(
            item.order.order_no, item.scenario.label, f"[{colour}]{item.status}[/]", item.note, f"{elapsed:.0f}"
        )
    return table


def _stage_times(engine: Engine, order_no: str) -> dict[str, float]:
    with unit_of_work(engine) as session:
        stages = stage_durations(session, order_no)
    waiting = sum(stages.get(s, 0.0) for s in ("CREDIT_HOLD", "AWAITING_PAYMENT", "AWAITING_APPROVAL"))
    transit = sum(stages.get(s, 0.0) for s in ("DISPATCHED", "IN_TRANSIT", "OUT_FOR_DELIVERY"))
    return {
        "approval": waiting,
        "picking": stages.get("PICKING", 0.0),
        "transit": transit,
        "total": sum(stages.values()),
    }


def summary_table(engine: Engine, items: list[Tracked]) -> Table:
    table = Table(title="orderflow demo: final")
    for column in ("order", "scenario", "expected", "final", "approval s", "picking s", "transit s", "total s", "ok"):
        table.add_column(column)
    for item in items:
        times = _stage_times(engine, item.order.order_no)
        ok = item.status == item.scenario.expected
        table.add_row(
            item.order.order_no,
            item.scenario.label,
            item.scenario.expected.value,
            item.status,
            *(f"{times[k]:.1f}" for k in ("approval", "picking", "transit", "total")),
            "[green]yes[/]" if ok else "[red]NO[/]",
        )
    return table


def restock_to_seeded_levels(engine: Engine, run_tag: str) -> int:
    """Earlier demo runs shipped stock: book goods receipts (as the warehouse would) that bring each SKU and
    warehouse back to the seeded level, so every run plays the same story. Returns the receipts booked."""
    booked = 0
    for (sku, warehouse), level in sorted(seeded_stock().items()):
        with unit_of_work(engine) as session:
            row = next(w for w in inventory_view(session, sku)["warehouses"] if w["warehouse"] == warehouse)
        missing = level - int(row["available"])
        if missing > 0:
            receipt = Receipt(
                sku=sku,
                warehouse=warehouse,
                qty=missing,
                lot=f"DEMO-{run_tag}",
                receipt_no=f"demo-{run_tag}-{sku}-{warehouse}",
            )
            stock.receive(engine, receipt, WAREHOUSE_USER)
            booked += 1
    return booked


def notice_counts(engine: Engine, order_nos: list[str]) -> list[tuple[str, str, int]]:
    """(channel, status, count) of the notices about these orders."""
    with unit_of_work(engine) as session:
        rows = session.exec(
            select(Notification.channel, Notification.status, func.count())
            .where(Notification.order_no.in_(order_nos))  # type: ignore[attr-defined]
            .group_by(Notification.channel, Notification.status)
        ).all()
    return sorted((str(channel), str(status), int(count)) for channel, status, count in rows)


async def notices_line(engine: Engine, order_nos: list[str], settle: float = 10.0) -> str:
    """How customers and staff were told; waits a little for the outbox relay to send the last ones."""
    deadline = time.monotonic() + settle
    counts = notice_counts(engine, order_nos)
    while any(status in ("queued", "sending") for _, status, _ in counts) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        counts = notice_counts(engine, order_nos)
    parts = [f"{count} {channel} {status}" for channel, status, count in counts]
    return "Notices: " + (", ".join(parts) if parts else "none")


async def follow_your_order(client: Client, engine: Engine, settings: Settings, items: list[Tracked]) -> None:
    """Once the person has approved the order left for them, play the warehouse for it until it is signed for."""
    console = Console() if sys.stdout.isatty() else Console(width=160)
    mine = [item for item in items if item.scenario.left_for_you]
    console.print("Waiting for your decision in the console (Ctrl-C stops the demo and the stack)…")
    last: dict[str, str] = {}
    while not all(item.status in TERMINAL_STATUSES for item in mine):
        for item in mine:
            try:
                state = await order_commands.live_state(client, item.order.order_no)
                item.status = state.status
                if last.get(item.order.order_no) != item.status:
                    console.print(f"{item.order.order_no}: {item.status}")
                    last[item.order.order_no] = item.status
                if item.status not in TERMINAL_STATUSES:
                    await act(client, engine, settings, item, state)
            except CommandError as exc:
                item.note = str(exc)[:60]
        await asyncio.sleep(1.0)
    with read_only(engine) as session:
        for item in mine:
            view = order_view(session, item.order.order_no)
            signers = ", ".join(s["signed_by"] for s in view["shipments"] if s["signed_by"])
            signed = f", signed for by {signers}" if signers else ""
            console.print(f"{item.order.order_no} ended {item.status}{signed}")


async def run_demo(
    client: Client,
    engine: Engine,
    settings: Settings,
    count: int,
    *,
    give_up_after: float = 600.0,
    follow: bool = False,
) -> bool:
    console = Console() if sys.stdout.isatty() else Console(width=160)
    tokens = seed(engine).tokens
    if tokens:  # a fresh database: these API tokens are shown once
        console.print("API tokens of the demo users: " + ", ".join(f"{u}={t}" for u, t in tokens.items()))
    passwords = reset_demo_passwords(engine)  # printed at the end, with the console's address
    started = datetime.now(UTC)
    run_tag = started.strftime("%Y%m%d-%H%M%S")
    if restocked := restock_to_seeded_levels(engine, run_tag):
        console.print(f"Goods received to bring the stock back to the seeded levels: {restocked} receipts")
    items = build_orders(max(count, 1), run_tag)
    token = integration_token(engine)
    digits = int(run_tag.replace("-", ""))
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=30) as http:
        for index, item in enumerate(items, start=1):
            item.order = await send(http, settings, token, item.order, platform_id=digits * 1000 + index)
            item.status = "RECEIVED"
    console.print(
        f"{len(items)} orders submitted through the API at {settings.api_url} (POST /orders as {DEMO_INTEGRATION_USER};"
        " Shopify and Taobao orders as their platforms' signed webhooks)"
    )
    deadline = time.monotonic() + give_up_after
    with Live(progress_table(items), console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() < deadline and not all(item.done for item in items):
            for item in items:
                if item.done:
                    continue
                try:
                    state = await order_commands.live_state(client, item.order.order_no)
                    item.status = state.status
                    if item.done:
                        item.finished = time.monotonic()
                        continue
                    await act(client, engine, settings, item, state)
                except CommandError as exc:
                    item.note = str(exc)[:60]  # e.g. a decision raced a status change: try again next tick
            live.update(progress_table(items))
            await asyncio.sleep(0.5)
    console.print(summary_table(engine, items))
    console.print(await notices_line(engine, [item.order.order_no for item in items]))
    money = await settle_money(engine, settings.state_dir, [item.order.order_no for item in items], started)
    console.print(money.table())
    ui = f"http://127.0.0.1:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}/workflows"
    console.print(f"Temporal UI: {ui}")
    console.print(f"API: http://127.0.0.1:{settings.api_port}/docs")
    console.print(f"Order views: orderflow status {items[0].order.order_no}   KPIs: orderflow report")
    console.print(
        f"Cockpit: http://127.0.0.1:{settings.api_port}/console/cockpit — the run's KPIs, charts and the orders behind"
        f" them: sign in as olga (password {passwords['olga']})"
    )
    waiting = [item.order.order_no for item in items if item.scenario.left_for_you]
    console.print(
        f"Console: http://127.0.0.1:{settings.api_port}/console — {', '.join(waiting)} waits for finance: sign in as"
        f" fiona (password {passwords['fiona']}) and approve it, on a phone if you like"
    )
    console.print(
        "Demo users (console passwords, new each demo run): "
        + ", ".join(f"{name} ({role.value}) {passwords[name]}" for name, role in DEMO_USERS)
    )
    missed = [item for item in items if item.status != item.scenario.expected]
    if not money.report.balances:
        console.print("[red]the reconciliation of the demo's period does not add up[/]")
    if missed:
        console.print(f"[red]{len(missed)} order(s) did not reach their expected end state[/]")
    else:
        console.print(f"[green]all {len(items)} orders reached their expected end state[/]")
    if follow and not missed:
        await follow_your_order(client, engine, settings, items)
    return not missed and money.report.balances
