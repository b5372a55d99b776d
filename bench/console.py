"""`make bench`, last part: the console's busiest pages with real data — p95 server time against 200 ms (issue 11).

    python -m bench.console [--orders 10000] [--users 50] [--requests 200] [--backends sqlite,postgres] [--json]

Per backend (a fresh SQLite file; a throwaway PostgreSQL cluster from tests.support.postgres), a database migrated
and seeded as the demo's, plus `--orders` orders (statuses spread as a working business has them: most completed,
some on their way, 4% waiting for finance, a few held or picking) over 30 sales reps and 90 days, their parcels
(four carrier events each), pick lists, and the staff notices each order would have sent (one per holder of the
role), and `--users` staff in all (30 sales, 8 finance, 2 directors, 6 warehouse, 2 ops, 2 admin). Then each page
is asked `--requests` times (after 5 unmeasured) through the app itself (FastAPI over httpx's ASGI transport, so
the time is the server's: routing, session check, queries, templates; no network), signed in as its user:
  inbox (finance)         GET /console as a finance approver: every order waiting for finance (the oldest 50 shown)
  inbox live (finance)    GET /console/inbox/live: what the page polls every 4 s
  inbox (warehouse)       GET /console as a warehouse hand of all three warehouses: their open pick lists
  orders (admin)          GET /console/orders: page 1 of all orders
  orders page 100 (admin) GET /console/orders?page=100: deep in the list
  orders search (admin)   GET /console/orders?q=SKU-101: orders with a line whose SKU starts so
  orders (sales rep)      GET /console/orders as one rep: only their own
The reference, measured in the same run on the same database: the page's main query alone as plain SQL on a raw
DBAPI connection (what no page can beat), and the ratio page / reference. The goal: every page's p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert, text
from sqlmodel import SQLModel

from core.config import Settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.secrets import with_local_secrets
from dev.seed import seed
from entrypoints.api.app import create_app, settle_heap
from models.status import OrderStatus, Role
from models.tables import Notification, OrderEvent, PickList, SalesOrder, Shipment, TrackingEvent, UserWarehouse
from services.accounts import set_password, sign_in
from services.users import add_user
from tests.support.orders import make_order
from tests.support.postgres import TEMPLATE_DB, create_template, start_cluster

GOAL_MS = 200.0
PASSWORD = "bench password 1"
SKUS = [f"SKU-10{n:02d}" for n in range(1, 21)]
CUSTOMERS = ["C-1001", "C-1002", "C-1003", "C-1004"]
WAREHOUSES = ["WH-SH", "WH-BJ", "WH-GZ"]
# A working business: most orders done, some moving, a few waiting for people.
STATUS_MIX = [
    (OrderStatus.COMPLETED, 70),
    (OrderStatus.IN_TRANSIT, 8),
    (OrderStatus.CANCELLED, 5),
    (OrderStatus.AWAITING_APPROVAL, 4),
    (OrderStatus.PICKING, 4),
    (OrderStatus.DELIVERY_EXCEPTION, 2),
    (OrderStatus.BACKORDERED, 2),
    (OrderStatus.CREDIT_HOLD, 1),
    (OrderStatus.AWAITING_PAYMENT, 2),
    (OrderStatus.REJECTED, 2),
]
STAFF = [(Role.SALES, 30), (Role.FINANCE, 8), (Role.FINANCE_DIRECTOR, 2), (Role.WAREHOUSE, 6), (Role.OPS, 2)]
DISPATCHED = {OrderStatus.COMPLETED, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERY_EXCEPTION}


def staff_names(users: int) -> dict[Role, list[str]]:
    names: dict[Role, list[str]] = {}
    for role, count in STAFF:
        names[role] = [f"b-{role.value}-{i:02d}" for i in range(1, count + 1)]
    names[Role.ADMIN] = [f"b-admin-{i:02d}" for i in range(1, max(users - sum(c for _, c in STAFF), 1) + 1)]
    return names


def fill(engine: Engine, orders: int, users: int, rng: random.Random) -> dict[Role, list[str]]:
    """The bench's staff and orders, written in bulk (core inserts, one transaction per table)."""
    names = staff_names(users)
    with unit_of_work(engine) as session:
        for role, members in names.items():
            for name in members:
                add_user(session, name, role, email=f"{name}@staff.orderflow.test")
        session.flush()
        for members in names.values():
            set_password(session, members[0], PASSWORD)
        for warehouse in WAREHOUSES:
            session.add(UserWarehouse(user_name=names[Role.WAREHOUSE][0], warehouse=warehouse))
    statuses = [s for s, weight in STATUS_MIX for _ in range(weight)]
    start = datetime.now(UTC) - timedelta(days=90)
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("orders", "events", "ships", "tracks", "picks", "notes")}
    for i in range(orders):
        number = f"BENCH-{i:06d}"
        status = rng.choice(statuses)
        lines = [(rng.choice(SKUS), rng.randint(1, 5), f"{rng.randint(20, 3000)}.00") for _ in range(rng.randint(1, 3))]
        rep = rng.choice(names[Role.SALES])
        order = make_order(number, lines, customer_id=rng.choice(CUSTOMERS)).model_copy(update={"sales_rep": rep})
        at = start + timedelta(seconds=rng.randint(0, 90 * 86400))
        waiting = status in (OrderStatus.AWAITING_APPROVAL, OrderStatus.CREDIT_HOLD)
        rows["orders"].append(
            {
                "order_no": number, "workflow_id": f"order-{number}", "customer_id": order.customer_id,
                "channel": order.channel, "sales_rep": rep, "order_type": order.order_type.value,
                "payment_method": order.payment.method.value, "currency": order.currency,
                "total": order.total, "status": status.value, "paid": False,
                "payload": order.model_dump(mode="json"), "content_hash": order.content_hash(),
                "created_at": at, "updated_at": at + timedelta(hours=2),
                "awaiting_role": "finance" if waiting else None, "awaiting_level": 1 if waiting else None,
                "awaiting_since": at + timedelta(minutes=5) if waiting else None,
                "awaiting_until": at + timedelta(days=3) if waiting else None,
                "awaiting_why": ["finance_over_10k"] if waiting else None,
            }
        )  # fmt: skip
        rows["events"] += [
            {"order_no": number, "seq": 1, "status": "RECEIVED", "at": at, "detail": ""},
            {"order_no": number, "seq": 2, "status": status.value, "at": at + timedelta(hours=2), "detail": ""},
        ]
        if status in DISPATCHED:
            tracking_no = f"SF{i:010d}"
            rows["ships"].append(
                {"order_no": number, "warehouse": rng.choice(WAREHOUSES), "carrier": "sim", "tracking_no": tracking_no,
                 "status": "DELIVERED" if status == OrderStatus.COMPLETED else "IN_TRANSIT",
                 "dispatched_at": at + timedelta(hours=3)}
            )  # fmt: skip
            for step, kind in enumerate(("INFO_RECEIVED", "PICKED_UP", "IN_TRANSIT", "DELIVERED")):
                rows["tracks"].append(
                    {"carrier": "sim", "tracking_no": tracking_no, "status": kind,
                     "at": at + timedelta(hours=4 + step * 12), "location": "上海", "description": kind.lower()}
                )  # fmt: skip
        if status == OrderStatus.PICKING:
            line = {"bin": "A-01-01", "sku": lines[0][0], "lot": "L1", "qty": lines[0][1], "line_no": 1}
            rows["picks"].append(
                {"order_no": number, "warehouse": rng.choice(WAREHOUSES), "lines": [line], "state": "issued"}
            )
        told = Role.FINANCE if waiting else Role.OPS if status == OrderStatus.DELIVERY_EXCEPTION else None
        for name in names[told] if told else []:
            rows["notes"].append(
                {"key": f"{number}:approval_needed:1:internal:{name}", "order_no": number, "kind": "approval_needed",
                 "channel": "internal", "recipient": name, "subject": f"Order {number} awaits your decision",
                 "body": f"Order {number} awaits your decision.", "status": "delivered", "created_at": at}
            )  # fmt: skip
    tables: dict[str, type[SQLModel]] = {"orders": SalesOrder, "events": OrderEvent, "ships": Shipment,
                                         "tracks": TrackingEvent, "picks": PickList, "notes": Notification}  # fmt: skip
    for key, table in tables.items():
        if rows[key]:  # through the model, so its defaults apply; then one bulk insert
            values = [table.model_validate(row).model_dump(exclude={"id"}) for row in rows[key]]
            with engine.begin() as conn:
                conn.execute(insert(table), values)
    return names


PAGES: list[tuple[str, Role, str]] = [
    ("inbox (finance)", Role.FINANCE, "/console"),
    ("inbox live (finance)", Role.FINANCE, "/console/inbox/live"),
    ("inbox (warehouse)", Role.WAREHOUSE, "/console"),
    ("orders (admin)", Role.ADMIN, "/console/orders"),
    ("orders page 100 (admin)", Role.ADMIN, "/console/orders?page=100"),
    ("orders search (admin)", Role.ADMIN, "/console/orders?q=SKU-101"),
    ("orders (sales rep)", Role.SALES, "/console/orders"),
]
# Each page's main query alone, as plain SQL: the reference.
FINANCE_TODOS = "SELECT * FROM orders WHERE awaiting_role IN ('finance') ORDER BY awaiting_since, order_no LIMIT 50"
REFERENCE = {
    "inbox (finance)": FINANCE_TODOS,
    "inbox live (finance)": FINANCE_TODOS,
    "inbox (warehouse)": "SELECT * FROM pick_lists WHERE state = 'issued' ORDER BY created_at LIMIT 200",
    "orders (admin)": "SELECT * FROM orders ORDER BY created_at DESC, order_no DESC LIMIT 50",
    "orders page 100 (admin)": "SELECT * FROM orders ORDER BY created_at DESC, order_no DESC LIMIT 50 OFFSET 4950",
    "orders search (admin)": "SELECT * FROM orders WHERE CAST(payload AS TEXT) LIKE '%\"sku\":\"SKU-101%' "
    "ORDER BY created_at DESC LIMIT 50",
    "orders (sales rep)": "SELECT * FROM orders WHERE sales_rep = 'b-sales-01' ORDER BY created_at DESC LIMIT 50",
}  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def timed(call: Callable[[], object], times: int) -> list[float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(times):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def measure(
    engine: Engine, settings: Settings, names: dict[Role, list[str]], requests: int
) -> list[dict[str, Any]]:
    app = create_app(settings, engine=engine)
    settle_heap()  # as the served app's start-up does (httpx's ASGI transport runs no lifespan)
    results = []
    for label, role, path in PAGES:
        token, _ = sign_in(engine, names[role][0], PASSWORD, address="bench", now=datetime.now(UTC))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", cookies={"of_session": token}
        ) as http:
            first = await http.get(path)
            assert first.status_code == 200, (label, first.status_code, first.text[:300])
            for _ in range(5):
                await http.get(path)
            samples = []
            for _ in range(requests):
                began = time.perf_counter()
                answer = await http.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
            sql = REFERENCE[label].replace("b-sales-01", names[Role.SALES][0])
            raw = engine.raw_connection()
            try:

                def reference(raw: Any = raw, sql: str = sql) -> None:
                    cursor = raw.cursor()
                    cursor.execute(sql)
                    cursor.fetchall()
                    cursor.close()

                floor = timed(reference, requests)
            finally:
                raw.close()
            results.append(
                {
                    "page": label,
                    "path": path,
                    "bytes": len(first.content),
                    "p50_ms": round(percentile(samples, 0.5), 1),
                    "p95_ms": round(percentile(samples, 0.95), 1),
                    "max_ms": round(max(samples), 1),
                    "reference_p95_ms": round(percentile(floor, 0.95), 2),
                    "ratio_p95": round(percentile(samples, 0.95) / max(percentile(floor, 0.95), 0.01), 1),
                    "goal_met": percentile(samples, 0.95) < GOAL_MS,
                }
            )
    return results


def run_backend(backend: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cluster = None
    if backend == "postgres":
        cluster = start_cluster()
        create_template(cluster)
        url = cluster.url(TEMPLATE_DB)
    else:
        url = f"sqlite:///{work / 'console-bench.db'}"
    try:
        engine = make_engine(url, pool_size=4)
        if backend == "sqlite":
            upgrade(engine)
            seed(engine, console_passwords=False)
        began = time.perf_counter()
        names = fill(engine, args.orders, args.users, random.Random(11))
        filled = time.perf_counter() - began
        if backend == "postgres":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        settings = with_local_secrets(Settings.model_validate({"state_dir": work, "database_url": url}))
        pages = asyncio.run(measure(engine, settings, names, args.requests))
        with engine.connect() as conn:
            counts = {
                table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ("orders", "users", "notifications", "shipments", "tracking_events", "pick_lists")
            }
        engine.dispose()
        return {"backend": backend, "fill_seconds": round(filled, 1), "rows": counts, "pages": pages}
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.base, ignore_errors=True)


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings only: not measured
    work = Path(tempfile.mkdtemp(prefix="orderflow-console-bench-"))
    report: dict[str, Any] = {
        "bench": "console",
        "commit": commit(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },  # fmt: skip
        "orders": args.orders,
        "users": args.users,
        "requests": args.requests,
        "runs": [],
    }
    try:
        for backend in args.backends.split(","):
            report["runs"].append(run_backend(backend.strip(), args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    print(
        f"console pages, {args.orders} orders, {args.users} users, {args.requests} requests each ({report['commit']})"
    )
    for run in report["runs"]:
        print(f"\n{run['backend']}: rows {run['rows']} (filled in {run['fill_seconds']} s)")
        print(
            f"  {'page':<26}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}{'ref p95':>9}{'ratio':>7}  goal p95 < {GOAL_MS:.0f}"
        )
        for p in run["pages"]:
            print(
                f"  {p['page']:<26}{p['p50_ms']:>8}{p['p95_ms']:>8}{p['max_ms']:>8}{p['reference_p95_ms']:>9}"
                f"{p['ratio_p95']:>7}  {'met' if p['goal_met'] else 'MISSED'}"
            )
    missed = [p["page"] for run in report["runs"] for p in run["pages"] if not p["goal_met"]]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
