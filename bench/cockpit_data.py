"""The cockpit bench's world: `orders` sales orders over `days` days, with everything the KPI read model is derived
from and the read model itself, written in bulk (PostgreSQL COPY; SQLite executemany).

Per order: its row, its lines (1-3 SKUs of the seeded catalogue), its status events (the happy path with the
waits a working business has: 12% wait for an approver, 4% are backordered first, 4% cancelled, 3% rejected, 2%
fail after dispatch; the orders of the last 3 days are still under way), its pick list, its reservations (locked,
consumed at dispatch, released when cancelled), its parcel (three carriers, a promise of 3 days) with 2-4 carrier
events, and its facts and stage times — derived by services/order_facts.py `derive`, the function the workflow's
steps use, so the bench reads what production would hold. Stock: a receipt (a new lot) every 14 days for every
SKU in every warehouse over the span. Deterministic for a given seed."""

from __future__ import annotations

import bisect
import io
import json
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from models.status import OrderStatus
from models.tables import Product, StockLot, StockReceipt
from services.order_facts import derive

WAREHOUSES = ("WH-SH", "WH-BJ", "WH-GZ")
CARRIERS = ("kuaidi100", "17track", "aftership")
CHANNELS = (("web", 40), ("tmall", 25), ("jd", 15), ("b2b", 12), ("shopify", 8))
REGIONS = ("华东", "华北", "华南", "华中", "西南", "西北", "东北")
CUSTOMERS = ("C-1001", "C-1002", "C-1003", "C-1004")
REPS = tuple(f"rep-{n:02d}" for n in range(1, 31))
OPEN_DAYS = 3  # orders received in the last 3 days are still under way
CHUNK = 20_000  # orders generated and written per round
S = OrderStatus

TABLES: dict[str, tuple[str, ...]] = {
    "orders": ("order_no", "workflow_id", "customer_id", "channel", "sales_rep", "order_type", "payment_method",
               "currency", "total", "status", "paid", "payload", "content_hash", "reasons", "created_at",
               "updated_at", "tags", "priority", "assignee", "dispatch_by"),
    "order_events": ("order_no", "seq", "status", "at", "detail"),
    "order_lines": ("order_no", "line_no", "sku", "qty", "unit_price", "amount", "short_first"),
    "pick_lists": ("order_no", "warehouse", "lines", "state", "created_at"),
    "reservations": ("key", "order_no", "line_no", "sku", "warehouse", "lot_id", "qty", "state", "created_at",
                     "updated_at"),
    "shipments": ("order_no", "warehouse", "carrier", "tracking_no", "status", "signed_at", "dispatched_at",
                  "promised_by", "ended_at"),
    "tracking_events": ("carrier", "tracking_no", "status", "at", "location", "description"),
    "order_facts": ("order_no", "received_at", "received_day", "channel", "region", "sales_rep", "customer_id",
                    "currency", "total", "status", "status_since", "lines", "units", "units_shipped",
                    "lines_short_first", "units_short_first", "backordered", "returned", "dispatch_by",
                    "approved_at", "dispatched_at", "delivered_at", "completed_at", "ended_at", "cycle_seconds",
                    "approval_wait_seconds", "approval_ended_at"),
    "order_stage_times": ("order_no", "stage", "seconds", "entered_at", "left_at"),
}  # fmt: skip
MONEY = {("orders", "total"), ("order_lines", "unit_price"), ("order_lines", "amount"), ("order_facts", "total")}


class Fields(SimpleNamespace):
    """A row's fields by name."""


def _hours(rng: random.Random, median: float, spread: float = 0.8) -> timedelta:
    return timedelta(hours=rng.lognormvariate(0, spread) * median)


def _path(rng: random.Random, received: datetime, now: datetime) -> tuple[list[tuple[str, datetime]], str]:
    """The order's events and how it ends: completed, cancelled, rejected, failed, or still under way at `now`."""
    roll = rng.random()
    fate = "rejected" if roll < 0.03 else "cancelled" if roll < 0.07 else "failed" if roll < 0.09 else "completed"
    at = received
    events = [(S.RECEIVED.value, at)]

    def step(status: OrderStatus, after: timedelta) -> bool:
        nonlocal at
        at += after
        if at > now:
            return False
        events.append((status.value, at))
        return True

    first = timedelta(minutes=rng.uniform(0.2, 12))
    if rng.random() < 0.12:
        if not step(S.AWAITING_APPROVAL, first) or fate == "rejected" and step(S.REJECTED, _hours(rng, 6)):
            return events, fate
        first = _hours(rng, 5)
    elif fate == "rejected":
        step(S.REJECTED, first)
        return events, fate
    if fate == "rejected":
        fate = "completed"  # rejected only by an approver above
    if not step(S.APPROVED, first):
        return events, fate
    backordered = rng.random() < 0.04
    if backordered and not step(S.BACKORDERED, timedelta(minutes=rng.uniform(1, 10))):
        return events, fate
    if fate == "cancelled":
        step(S.CANCELLED, _hours(rng, 30 if backordered else 2))
        return events, fate
    allocated_after = _hours(rng, 30) if backordered else timedelta(minutes=rng.uniform(1, 10))
    for status, after in (
        (S.ALLOCATED, allocated_after),
        (S.PICKING, timedelta(minutes=rng.uniform(1, 30))),
        (S.DISPATCHED, _hours(rng, 14)),
        (S.IN_TRANSIT, _hours(rng, 3)),
    ):
        if not step(status, after):
            return events, fate
    if fate == "failed":
        step(S.FAILED, _hours(rng, 60))
        return events, fate
    for status, after in ((S.DELIVERED, _hours(rng, 40, 0.5)), (S.COMPLETED, timedelta(hours=12))):
        if not step(status, after):
            return events, fate
    return events, fate


class World:
    """The generator: the seeded catalogue, the stock lots it made (for the reservations' lot ids), the clock."""

    def __init__(self, session: Session, now: datetime, days: int, zone: ZoneInfo, seed: int) -> None:
        self.now, self.days, self.zone = now, days, zone
        self.rng = random.Random(seed)
        self.products = [(p.sku, p.unit_price) for p in session.exec(select(Product).order_by(Product.sku)).all()]
        self.lots: dict[tuple[str, str], tuple[list[datetime], list[int]]] = {}
        for lot in session.exec(
            select(StockLot).where(col(StockLot.lot).startswith("BENCH-")).order_by(col(StockLot.received_at))
        ).all():
            times, ids = self.lots.setdefault((lot.warehouse, lot.sku), ([], []))
            times.append(lot.received_at)
            ids.append(lot.id or 0)

    def lot_for(self, warehouse: str, sku: str, at: datetime) -> int:
        times, ids = self.lots[(warehouse, sku)]
        return ids[max(bisect.bisect_right(times, at) - 1, 0)]

    def orders(self, first: int, count: int) -> dict[str, list[tuple[Any, ...]]]:
        rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLES}
        rng, span = self.rng, self.days * 86400
        channels = [c for c, weight in CHANNELS for _ in range(weight)]
        for n in range(first, first + count):
            no = f"BK-{n:07d}"
            received = self.now - timedelta(seconds=rng.uniform(0, span))
            events, fate = _path(rng, received, self.now)
            status = events[-1][0]
            picked = rng.sample(self.products, rng.randint(1, 3))
            # Plain namespaces in place of the models (whose instrumented construction would cost more than the
            # rest of the generator): `derive` only reads and sets attributes.
            lines = [
                Fields(order_no=no, line_no=i, sku=sku, qty=rng.randint(1, 5), unit_price=price, short_first=None)
                for i, (sku, price) in enumerate(picked, start=1)
            ]
            for line in lines:
                line.amount = line.unit_price * line.qty
            reached = {s for s, _ in events}
            backordered = S.BACKORDERED in reached
            if S.ALLOCATED in reached or backordered:
                for line in lines:
                    line.short_first = 0
                if backordered:
                    lines[0].short_first = lines[0].qty
            total = sum((line.amount for line in lines), Decimal("0.00"))
            channel, region = rng.choice(channels), rng.choice(REGIONS)
            order = Fields(
                order_no=no, workflow_id=f"order-{no}", customer_id=rng.choice(CUSTOMERS), channel=channel,
                sales_rep=rng.choice(REPS), order_type="standard", payment_method="credit", currency="CNY",
                total=total, status=status, paid=False,
                payload={"order_no": no, "ship_to": {"region": region}}, content_hash=no,
                reasons=["cancelled by rep: customer changed mind"] if status == S.CANCELLED else
                ["rejected by director: too risky"] if status == S.REJECTED else [],
                created_at=received, updated_at=events[-1][1], dispatch_by=received + timedelta(hours=48), tags=[],
                priority="", assignee="",
            )  # fmt: skip
            warehouse = rng.choice(WAREHOUSES)
            at_of = dict(events)
            shipped = 0
            parcels: list[str] = []
            if S.PICKING in at_of:
                rows["pick_lists"].append(
                    (no, warehouse, [], "shipped" if S.DISPATCHED in at_of else "issued", at_of[S.PICKING])
                )
            if S.ALLOCATED in at_of:
                locked = at_of[S.ALLOCATED]
                left = at_of.get(S.DISPATCHED)
                for line in lines:
                    state = "consumed" if left else "locked"
                    rows["reservations"].append(
                        (f"{no}:{line.line_no}:{warehouse}", no, line.line_no, line.sku, warehouse,
                         self.lot_for(warehouse, line.sku, locked), line.qty, state, locked, left or locked)
                    )  # fmt: skip
                    shipped += line.qty if left else 0
            if S.DISPATCHED in at_of:
                left = at_of[S.DISPATCHED]
                carrier = rng.choice(CARRIERS)
                tracking_no = f"T{n:09d}"
                ended = at_of.get(S.DELIVERED) or at_of.get(S.FAILED)
                final = "DELIVERED" if S.DELIVERED in at_of else "REFUSED" if S.FAILED in at_of else "IN_TRANSIT"
                parcels.append(final)
                rows["shipments"].append(
                    (no, warehouse, carrier, tracking_no, final, at_of.get(S.DELIVERED), left,
                     left + timedelta(days=3), ended)
                )  # fmt: skip
                news = [("PICKED_UP", left)]
                if S.IN_TRANSIT in at_of:
                    news.append(("IN_TRANSIT", at_of[S.IN_TRANSIT]))
                if ended is not None and rng.random() < 0.06:
                    news.append(("ATTEMPT_FAILED", ended - timedelta(hours=8)))
                if ended is not None:
                    news.append((final, ended))
                rows["tracking_events"] += [(carrier, tracking_no, s, at, "上海", s.lower()) for s, at in news]
            order_row = _values(order, TABLES["orders"])
            rows["orders"].append(order_row)
            rows["order_events"] += [(no, seq, s, at, "") for seq, (s, at) in enumerate(events, start=1)]
            rows["order_lines"] += [_values(line, TABLES["order_lines"]) for line in lines]
            blank = Fields(order_no=no, received_at=received, received_day=received.astimezone(self.zone).date(),
                           customer_id=order.customer_id, currency=order.currency, total=total,
                           channel=channel, sales_rep=order.sales_rep)  # fmt: skip
            facts, times = derive(order, events, lines, shipped, parcels, blank, self.zone)  # type: ignore[arg-type]
            rows["order_facts"].append(_values(facts, TABLES["order_facts"]))
            rows["order_stage_times"] += [(no, stage, t.seconds, t.entered_at, t.left_at) for stage, t in times.items()]
        return rows


def _values(model: Any, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(getattr(model, c) for c in columns)


def add_stock(session: Session, now: datetime, days: int, seed: int) -> None:
    """A lot of 200-600 units received every 14 days for each SKU in each warehouse over the span (with its receipt);
    the newest three lots of each still hold units."""
    rng = random.Random(seed)
    skus = [p.sku for p in session.exec(select(Product).order_by(Product.sku)).all()]
    for warehouse in WAREHOUSES:
        for sku in skus:
            at = now - timedelta(days=days + 14)
            made: list[StockLot] = []
            while at < now:
                lot = StockLot(warehouse=warehouse, sku=sku, bin="B-01-01", lot=f"BENCH-{at:%Y%m%d}",
                               received_at=at, on_hand=0)  # fmt: skip
                session.add(lot)
                made.append(lot)
                at += timedelta(days=14)
            session.flush()
            for lot in made[-3:]:
                lot.on_hand = rng.randint(50, 400)
            for lot in made:
                session.add(StockReceipt(receipt_no=f"{warehouse}-{sku}-{lot.lot}", sku=sku, warehouse=warehouse,
                                         lot_id=lot.id or 0, lot=lot.lot, qty=rng.randint(200, 600),
                                         at=lot.received_at))  # fmt: skip
    session.commit()


# --- writing ----------------------------------------------------------------------------------------------------


def _pg_cell(value: Any, money: bool) -> str:
    if value is None:
        return r"\N"
    if money:
        return str(int(Decimal(value) * 100))
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _sqlite_cell(value: Any, money: bool) -> Any:
    if value is None:
        return None
    if money:
        return int(Decimal(value) * 100)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):  # as SQLAlchemy's SQLite DATETIME stores it: naive UTC
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        return str(value)
    return value


def write(engine: Engine, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """One transaction for the round's rows of every table."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            cursor.execute("SET synchronous_commit TO off")
        for table, columns in TABLES.items():
            money = [(table, c) in MONEY for c in columns]
            if postgres:
                buffer = io.StringIO()
                for row in rows[table]:
                    buffer.write("\t".join(_pg_cell(v, m) for v, m in zip(row, money, strict=True)))
                    buffer.write("\n")
                buffer.seek(0)
                cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", buffer)
            else:
                marks = ", ".join("?" for _ in columns)
                cursor.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    [[_sqlite_cell(v, m) for v, m in zip(row, money, strict=True)] for row in rows[table]],
                )
        raw.commit()
    finally:
        raw.close()


def generate(engine: Engine, orders: int, days: int, zone: ZoneInfo, now: datetime, seed: int = 7) -> dict[str, int]:
    """Fill the (migrated, seeded) database; returns the row count of each table written."""
    with Session(engine) as session:
        add_stock(session, now, days, seed)
        world = World(session, now, days, zone, seed)
    for first in range(0, orders, CHUNK):
        write(engine, world.orders(first, min(CHUNK, orders - first)))
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        return {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES}
