"""`make bench`: the order pipeline up to DISPATCHED against a bare-Temporal floor, on a real dev server.

    python -m bench.pipeline [--orders 200] [--concurrency 100] [--json] [--timeout 900]

One run, all in a fresh temp dir, everything on free loopback ports:
  1. a Temporal dev server (the venv's `temporal`, dev.stack.temporal_argv: db file, WAL + synchronous=normal,
     search attributes), the carrier simulator (own process), a fresh SQLite database (migrated, seeded,
     stock topped up so no order backorders);
  2. the real worker (`worker.py`) in its own process;
  3. pipeline: N auto-approved orders through order_commands.submit, at most `--concurrency` in flight; the
     driver watches the read model (order_events) and dispatches each order (order_commands.dispatch, carrier
     `sim`) as soon as its PICKING row appears; done when its DISPATCHED row appears. Then every order
     workflow is terminated (they would go on tracking parcels);
  4. floor: bench.floor's bare workflow with the shape read off a real OrderFulfillment history (same
     activities, upserts, update wait and child start up to DISPATCHED, all no-ops), own worker process,
     same N and concurrency, on the same server;
  5. the figures, as text or `--json`.

Never part of the tests. Every phase is bounded by `--timeout` (and a hard alarm behind it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

from sqlmodel import select
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from bench.deadline import hard_deadline
from bench.floor import NOTIFY_ENV, STEP_ACTIVITY, STEP_CHILD, STEP_UPDATE, STEP_UPSERT, FloorWorkflow
from bench.procstat import machine_cpu_fields, process_cpu
from core.config import PROJECT_ROOT, Settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.secrets import with_local_secrets
from core.temporal import connect
from dev.seed import seed
from dev.stack import LOOPBACK, temporal_argv, temporal_binary
from models.order import Order
from models.tables import Customer, StockLot
from services import order_commands
from services.billing.ledger import balances
from tests.support.orders import SHANGHAI, make_order
from workflows.contract import order_workflow_id

# --- the orders ---------------------------------------------------------------------------------------

# Cheap SKUs at their list prices: totals stay far below every approval rule (finance over 10,000).
BENCH_SKUS: tuple[tuple[str, str], ...] = (("SKU-1016", "39.00"), ("SKU-1015", "89.00"), ("SKU-1006", "129.00"))
# Established customers (no prepay), each shipping to its own region: the orders spread over the warehouses.
SHIP_TO: dict[str, dict[str, str]] = {
    "C-1001": SHANGHAI,
    "C-1002": {
        "name": "李四",
        "phone": "13900000000",
        "region": "华北",
        "province": "北京",
        "city": "北京",
        "address": "朝阳区 XX 路 2 号",
        "postcode": "100020",
    },
    "C-1003": {
        "name": "王五",
        "phone": "13700000000",
        "region": "华南",
        "province": "广东",
        "city": "广州",
        "address": "天河区 XX 路 3 号",
        "postcode": "510000",
    },
    "C-1004": {
        "name": "赵六",
        "phone": "13600000000",
        "region": "华中",
        "province": "湖北",
        "city": "武汉",
        "address": "洪山区 XX 路 4 号",
        "postcode": "430070",
    },
}
BENCH_LOT_ON_HAND = 1_000_000
# Older than every seeded lot, so FIFO takes it first: one reservation per line, the same work per order.
BENCH_LOT_RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)

# A read-model status at which an auto-approved order would stop or wait for a person: the run is broken.
STUCK_STATUSES = frozenset(
    {"REJECTED", "CREDIT_HOLD", "AWAITING_PAYMENT", "AWAITING_APPROVAL", "BACKORDERED", "CANCELLED", "FAILED"}
)


def bench_order(order_no: str, index: int) -> Order:
    customer = list(SHIP_TO)[index % len(SHIP_TO)]
    first = BENCH_SKUS[index % len(BENCH_SKUS)]
    lines = [(first[0], 1 + index % 2, first[1])]
    if index % 3 == 0:
        second = BENCH_SKUS[(index + 1) % len(BENCH_SKUS)]
        lines.append((second[0], 1, second[1]))
    return make_order(order_no, lines, customer_id=customer, ship_to=SHIP_TO[customer])


def prepare_database(db_path: Path, orders: int) -> list[str]:
    """Migrate + seed a fresh SQLite file, top up stock, and make sure no bench order hits a credit hold."""
    notes: list[str] = []
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        upgrade(engine)
        seed(engine, console_passwords=False)
        with unit_of_work(engine) as session:
            codes = sorted({lot.warehouse for lot in session.exec(select(StockLot)).all()})
            for code in codes:
                for sku, _ in BENCH_SKUS:
                    session.add(
                        StockLot(
                            warehouse=code,
                            sku=sku,
                            bin="Z-99-99",
                            lot=f"BENCH-{code}-{sku}",
                            received_at=BENCH_LOT_RECEIVED,
                            on_hand=BENCH_LOT_ON_HAND,
                        )
                    )
            # Orders count against credit until paid; none is paid during the bench.
            worst = max(bench_order("X", i).total for i in range(6))
            per_customer = worst * math.ceil(orders / len(SHIP_TO))
            owed = balances(session, list(SHIP_TO))
            for customer_id in SHIP_TO:
                customer = session.get(Customer, customer_id)
                assert customer is not None, customer_id
                receivables = owed.get(customer_id, Decimal("0.00"))
                if receivables + per_customer > customer.credit_limit:
                    limit = receivables + per_customer * 2
                    customer.credit_limit = limit
                    session.add(customer)
                    notes.append(f"credit limit of {customer_id} raised to {limit} (bench DB only)")
    finally:
        engine.dispose()
    return notes


# --- processes ----------------------------------------------------------------------------------------

_CHILDREN: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def spawn(argv: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv), env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    _CHILDREN.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM to the process group we created for it (its own session), SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _CHILDREN:
        _CHILDREN.remove(proc)


def kill_children_now() -> None:
    for proc in list(_CHILDREN):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while starting; see {log}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1.0):
            return
        time.sleep(0.1)
    raise TimeoutError(f"port {port} not open after {timeout}s; see {log}")


async def wait_pollers(client: Client, task_queue: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """A worker is up when it polls both the workflow and the activity task queue."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; see {log}")
        ready = True
        for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
            answer = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
                )
            )
            ready = ready and bool(answer.pollers)
        if ready:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no worker polls {task_queue} after 60s; see {log}")


async def connect_when_ready(settings: Settings) -> Client:
    deadline = time.monotonic() + 60
    while True:
        try:
            client = await connect(settings)
            await client.count_workflows("OrderStatus = 'PICKING'")  # namespace up, search attributes known
            return client
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


# --- CPU accounting -----------------------------------------------------------------------------------


def machine_cpu() -> dict[str, float]:
    values = machine_cpu_fields()
    names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    return dict(zip(names, values, strict=False))


class CpuMeter:
    """CPU seconds per named process, the rest of the machine's busy time ("others": processes that are not
    part of the bench, e.g. someone's test run), and the iowait share, over a window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start_proc = {name: process_cpu(pid) for name, pid in pids.items()}
        self.start_machine = machine_cpu()
        self.start = time.monotonic()

    def read(self) -> dict[str, Any]:
        wall = time.monotonic() - self.start
        seconds = {name: round(process_cpu(pid) - self.start_proc[name], 2) for name, pid in self.pids.items()}
        now = machine_cpu()
        delta = {k: now[k] - self.start_machine.get(k, 0.0) for k in now}
        total = sum(delta.values()) or 1.0
        busy = total - delta["idle"] - delta["iowait"]
        return {
            "wall_s": round(wall, 2),
            "process_cpu_s": seconds,
            "others_cpu_s": round(max(0.0, busy - sum(seconds.values())), 2),
            "machine_busy_pct": round(100 * busy / total, 1),
            "machine_iowait_pct": round(100 * delta["iowait"] / total, 1),
        }


async def wait_quiet(pids: dict[str, int], max_wait: float, threshold_pct: float, log: Callable[[str], None]) -> float:
    """Wait (at most max_wait s) until the whole machine is below threshold_pct busy over a 2 s window.

    Whole machine: other sessions' test runs (on 2 cores they halve the figures) and the Temporal server
    still settling the previous phase (terminations, child closes) both count. Returns the last window's
    busy share."""
    deadline = time.monotonic() + max_wait
    told = False
    while True:
        meter = CpuMeter(pids)
        await asyncio.sleep(2.0)
        busy = float(meter.read()["machine_busy_pct"])
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy
        if not told:
            log(f"machine {busy:.0f}% busy before the run: waiting up to {max_wait:.0f}s for quiet")
            told = True


def disturbed(phase: str, cpu: dict[str, Any], notes: list[str]) -> None:
    share = 100 * cpu["others_cpu_s"] / (cpu["wall_s"] * (os.cpu_count() or 1))
    if share > 5:
        notes.append(
            f"{phase}: processes outside the bench took {share:.0f}% of the machine during the run "
            "(orders/s understated; CPU-ms per order is the steadier figure)"
        )


def cpu_per_order(cpu: dict[str, Any], orders: int) -> dict[str, float]:
    per = {name: round(1000 * seconds / orders, 1) for name, seconds in cpu["process_cpu_s"].items()}
    per["bench_total"] = round(sum(per.values()), 1)
    return per


# --- statistics -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = [s * 1000 for s in seconds]
    return {
        "p50": round(percentile(ms, 50), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1),
        "mean": round(sum(ms) / len(ms), 1),
    }


def db_time(value: str) -> float:
    """order_events.at as SQLite stores it (naive UTC text) → epoch seconds."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


# --- history reading --------------------------------------------------------------------------------


def _ts(event: HistoryEvent) -> float:
    return event.event_time.ToMicroseconds() / 1e6


def _upserted_status(event: HistoryEvent) -> str | None:
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    if "OrderStatus" not in fields:
        return None
    value = json.loads(fields["OrderStatus"].data or b"null")
    return str(value) if value is not None else None


def cut_at_dispatched(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """Events of an OrderFulfillment history up to the completion of the activity that records DISPATCHED."""
    upsert = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and _upserted_status(e) == "DISPATCHED"
    )
    scheduled = next(
        e for e in events[upsert:] if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ).event_id
    end = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.scheduled_event_id == scheduled
    )
    return list(events[: end + 1])


def plan_of(events: Sequence[HistoryEvent]) -> tuple[list[str], list[str]]:
    """The floor plan (see bench.floor) and the activity types, in order, of a cut history."""
    plan: list[str] = []
    activities: list[str] = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            plan.append(STEP_ACTIVITY)
            activities.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            plan.append(STEP_UPSERT)
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            plan.append(STEP_UPDATE)
        elif e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            plan.append(STEP_CHILD)
    return plan, activities


def breakdown(events: Sequence[HistoryEvent]) -> dict[str, float]:
    """Where one workflow's time went (seconds), from server event times, first to last event given.

    The workflows are sequential up to DISPATCHED, so these spans do not overlap:
    act_queue  activity scheduled → started (Temporal matching, waiting for a free activity slot);
    act_run    activity started → completed (the body; for the pipeline: SQL incl. SQLite write-lock waits);
    wft_queue  workflow task scheduled → started (waiting for the worker to poll it);
    wft_run    workflow task started → completed (the worker runs workflow code + the completion RPC);
    other      the rest: idle until the dispatch update arrives, waiting for the child to start.
    update_wait (overlaps the above) is the activity before the update completed → update accepted.
    """
    act_scheduled: dict[int, float] = {}
    act_started: dict[int, float] = {}
    wft_scheduled: dict[int, float] = {}
    wft_started: dict[int, float] = {}
    spans = dict.fromkeys(("act_queue", "act_run", "wft_queue", "wft_run"), 0.0)
    update_wait = 0.0
    last_completed = None
    for e in events:
        t = _ts(e)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            act_scheduled[e.event_id] = t
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            act_started[sid] = t
            spans["act_queue"] += t - act_scheduled[sid]
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            spans["act_run"] += t - act_started[sid]
            last_completed = t
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_scheduled[e.event_id] = t
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            wft_started[sid] = t
            spans["wft_queue"] += t - wft_scheduled[sid]
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            sid = e.workflow_task_completed_event_attributes.scheduled_event_id
            spans["wft_run"] += t - wft_started[sid]
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED and last_completed is not None:
            update_wait += t - last_completed
    total = _ts(events[-1]) - _ts(events[0])
    return {"total": total, **spans, "other": total - sum(spans.values()), "update_wait": update_wait}


def mean_breakdown(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {key: round(1000 * sum(r[key] for r in rows) / len(rows), 1) for key in rows[0]}


def activity_spans(events: Sequence[HistoryEvent]) -> list[tuple[str, float, float]]:
    """(activity type, scheduled → started, started → completed) per completed activity, in seconds."""
    names: dict[int, str] = {}
    scheduled: dict[int, float] = {}
    started: dict[int, float] = {}
    spans = []
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[e.event_id] = _ts(e)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[e.activity_task_started_event_attributes.scheduled_event_id] = _ts(e)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            spans.append((names[sid], started[sid] - scheduled[sid], _ts(e) - started[sid]))
    return spans


async def sample_breakdowns(
    client: Client, workflow_ids: list[str], cut: Callable[[Sequence[HistoryEvent]], list[HistoryEvent]], n: int = 20
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean breakdown (ms) over a spread sample, and the mean run time (ms) per activity type."""
    step = max(1, len(workflow_ids) // n)
    rows = []
    by_type: dict[str, list[float]] = {}
    for workflow_id in workflow_ids[::step][:n]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events = cut(history.events)
        rows.append(breakdown(events))
        for name, _, run in activity_spans(events):
            by_type.setdefault(name, []).append(run)
    run_by_type = {name: round(1000 * sum(v) / len(v), 1) for name, v in by_type.items()}
    return mean_breakdown(rows), run_by_type


# --- the pipeline run -------------------------------------------------------------------------------


@dataclass
class OrderRun:
    order: Order
    t_submit: float = 0.0  # epoch seconds when the submit call started (intake)
    allocated_at: float | None = None  # order_events.at of ALLOCATED
    picking_seen: float | None = None
    dispatched_at: float | None = None  # order_events.at of DISPATCHED (workflow clock)
    dispatched_seen: float | None = None  # when the driver saw the DISPATCHED row (committed)
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ReadModelWatcher:
    """Tails order_events (ids only grow: SQLite commits one writer at a time) and drives the orders."""

    def __init__(self, client: Client, db_path: Path, interval: float) -> None:
        self.client = client
        self.db = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
        self.interval = interval
        self.orders: dict[str, OrderRun] = {}
        self.last_id = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    def close(self) -> None:
        self.db.close()

    async def run(self) -> None:
        while not self.stopped:
            rows = self.db.execute(
                "SELECT id, order_no, status, at FROM order_events WHERE id > ? ORDER BY id", (self.last_id,)
            ).fetchall()
            now = time.time()
            for row_id, order_no, status, at in rows:
                self.last_id = row_id
                run = self.orders.get(order_no)
                if run is None or run.done.is_set():
                    continue
                if status == "ALLOCATED":
                    run.allocated_at = db_time(at)
                elif status == "PICKING":
                    run.picking_seen = now
                    warehouses = [
                        w
                        for (w,) in self.db.execute("SELECT warehouse FROM pick_lists WHERE order_no = ?", (order_no,))
                    ]
                    for warehouse in warehouses:
                        task = asyncio.create_task(self._dispatch(run, warehouse))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
                elif status == "DISPATCHED":
                    run.dispatched_at = db_time(at)
                    run.dispatched_seen = now
                    run.done.set()
                elif status in STUCK_STATUSES:
                    run.error = f"order {order_no} reached {status}"
                    run.done.set()
            await asyncio.sleep(self.interval)

    async def _dispatch(self, run: OrderRun, warehouse: str) -> None:
        order_no = run.order.order_no
        try:
            await order_commands.dispatch(
                self.client, order_no, warehouse=warehouse, carrier="sim", tracking_no=f"T{order_no}-{warehouse}"
            )
        except Exception as exc:  # noqa: BLE001 - any failure ends this order's run with a reason
            run.error = f"dispatch of {order_no} from {warehouse} failed: {exc!r}"
            run.done.set()


async def run_pipeline(
    client: Client, db_path: Path, task_queue: str, order_nos: list[str], concurrency: int, interval: float
) -> tuple[list[OrderRun], float]:
    """All orders submitted (≤ concurrency in flight) and driven to DISPATCHED; returns runs and wall time."""
    watcher = ReadModelWatcher(client, db_path, interval)
    runs = [OrderRun(bench_order(order_no, i)) for i, order_no in enumerate(order_nos)]
    watcher.orders = {run.order.order_no: run for run in runs}
    gate = asyncio.Semaphore(concurrency)

    async def one(run: OrderRun) -> None:
        async with gate:
            run.t_submit = time.time()
            await order_commands.submit(client, run.order, task_queue)
            await run.done.wait()
            if run.error:
                raise RuntimeError(run.error)

    watching = asyncio.create_task(watcher.run())
    start = time.time()
    try:
        await asyncio.gather(*(one(run) for run in runs))
    finally:
        watcher.stopped = True
        await asyncio.gather(watching, *watcher.tasks, return_exceptions=True)
        watcher.close()
    end = max(run.dispatched_seen or 0.0 for run in runs)
    return runs, end - start


async def terminate_all(client: Client, workflow_ids: list[str]) -> int:
    """Terminate the order workflows (their trackers go with them: parent close policy TERMINATE)."""
    gate = asyncio.Semaphore(50)

    async def one(workflow_id: str) -> None:
        async with gate:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(workflow_id).terminate(reason="bench done")

    await asyncio.gather(*(one(w) for w in workflow_ids))
    deadline = time.monotonic() + 60
    running = -1
    while time.monotonic() < deadline:
        running = (await client.count_workflows("ExecutionStatus = 'Running'")).count
        if running == 0:
            break
        await asyncio.sleep(0.5)
    return running


# --- the floor run ----------------------------------------------------------------------------------


NOTICE_TIMEOUT = 120.0  # a floor workflow reaches its wait long before this, even 100 in flight on 2 cores


class _Notified(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[None]] = {}

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        future = self.waiting.get(data.decode())
        if future is not None and not future.done():
            future.set_result(None)


async def run_floor(
    client: Client,
    task_queue: str,
    plan: list[str],
    workflow_ids: list[str],
    concurrency: int,
    notified: _Notified,
) -> tuple[list[float], float, int]:
    """Returns per-workflow intake → completion seconds, the wall time, and how many notices were lost."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    lost = 0

    async def one(workflow_id: str) -> None:
        nonlocal lost
        async with gate:
            t0 = time.time()
            reached = asyncio.get_running_loop().create_future()
            notified.waiting[workflow_id] = reached
            handle: WorkflowHandle[Any, int] = await client.start_workflow(
                FloorWorkflow.run, plan, id=workflow_id, task_queue=task_queue
            )
            if STEP_UPDATE in plan:
                try:
                    await asyncio.wait_for(reached, NOTICE_TIMEOUT)
                except TimeoutError:
                    lost += 1  # the datagram got lost: the update still goes, late
                await handle.execute_update(FloorWorkflow.proceed)
            await handle.result()
            latencies.append(time.time() - t0)
            notified.waiting.pop(workflow_id, None)

    start = time.time()
    await asyncio.gather(*(one(w) for w in workflow_ids))
    return latencies, time.time() - start, lost


# --- orchestration ------------------------------------------------------------------------------------


def _worker_env(settings: Settings, db_path: Path, sim_url: str, task_queue: str) -> dict[str, str]:
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "ORDERFLOW_CARRIER_SIM_URL": sim_url,
        "ORDERFLOW_TASK_QUEUE": task_queue,
        "ORDERFLOW_STATE_DIR": str(settings.state_dir),
        "PYTHONUNBUFFERED": "1",
    }


def machine_facts() -> dict[str, Any]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")),
        "0",
    )
    return {
        "nproc": run("nproc"),
        "mem_gib": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "temporal": run(temporal_binary(), "--version"),
        "kernel": platform.release(),
    }


async def bench(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    settings = Settings(
        _env_file=None,
        state_dir=tmp,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-orders-{run_id}",
    )
    settings = with_local_secrets(
        settings.model_copy(update={"temporal_address": f"{LOOPBACK}:{settings.temporal_port}"})
    )
    logs = tmp / "logs"
    logs.mkdir()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.pipeline", *sys.argv[1:]]),
        "orders": args.orders,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "machine": machine_facts(),
        "notes": [],
    }

    # 1. Temporal dev server, simulator, database.
    argv = [*temporal_argv(temporal_binary(), settings), "--headless"]
    temporal_log = logs / "temporal.log"
    temporal = spawn(argv, dict(os.environ), temporal_log)
    sim_port = free_port()
    sim_url = f"http://{LOOPBACK}:{sim_port}"
    sim_log = logs / "simulator.log"
    simulator = spawn(
        [
            sys.executable,
            "-m",
            "dev.simulator.carriers",
            "--host",
            LOOPBACK,
            "--port",
            str(sim_port),
            "--step-seconds",
            str(args.sim_step_seconds),
            "--log-level",
            "warning",
        ],
        dict(os.environ),
        sim_log,
    )
    db_path = tmp / "orderflow.db"
    result["notes"] += prepare_database(db_path, args.orders + args.warmup)
    await asyncio.to_thread(wait_tcp, settings.temporal_port, temporal, temporal_log)
    await asyncio.to_thread(wait_tcp, sim_port, simulator, sim_log)
    client = await connect_when_ready(settings)
    log(f"temporal dev server on {settings.temporal_address} (db {tmp / 'temporal.db'}), simulator on {sim_url}")

    # 2. The real worker, own process.
    worker_log = logs / "worker.log"
    worker = spawn(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        _worker_env(settings, db_path, sim_url, settings.task_queue),
        worker_log,
    )
    await wait_pollers(client, settings.task_queue, worker, worker_log)
    log(f"worker up (pid {worker.pid}, {settings.worker_activity_threads} activity threads)")

    # 3. Pipeline: warm-up (also gives the history the floor copies), then the measured run.
    warm = [f"W{run_id}-{i:05d}" for i in range(args.warmup)]
    measured = [f"P{run_id}-{i:05d}" for i in range(args.orders)]
    if warm:
        await run_pipeline(client, db_path, settings.task_queue, warm, min(args.concurrency, len(warm)), args.poll)
    shape_source = warm[0] if warm else None
    pids = {"temporal": temporal.pid, "worker": worker.pid, "simulator": simulator.pid, "driver": os.getpid()}
    others_before = await wait_quiet(pids, args.quiet_wait, args.quiet_threshold, log)
    log(f"pipeline: {args.orders} orders, {args.concurrency} in flight ...")
    meter = CpuMeter(pids)
    runs, wall = await run_pipeline(client, db_path, settings.task_queue, measured, args.concurrency, args.poll)
    cpu = meter.read()
    shape_source = shape_source or runs[0].order.order_no
    history = await client.get_workflow_handle(f"order-{shape_source}").fetch_history()
    cut = cut_at_dispatched(history.events)
    plan, activity_types = plan_of(cut)
    pipeline_breakdown, pipeline_runs = await sample_breakdowns(
        client, [order_workflow_id(r.order.order_no) for r in runs], cut_at_dispatched
    )
    result["pipeline"] = {
        "wall_s": round(wall, 2),
        "orders_per_s": round(args.orders / wall, 2),
        "intake_to_allocated_ms": summary_ms([r.allocated_at - r.t_submit for r in runs if r.allocated_at]),
        "intake_to_dispatched_ms": summary_ms([r.dispatched_seen - r.t_submit for r in runs if r.dispatched_seen]),
        "intake_to_dispatched_event_at_ms": summary_ms([r.dispatched_at - r.t_submit for r in runs if r.dispatched_at]),
        "picking_seen_to_dispatched_ms": summary_ms(
            [r.dispatched_seen - r.picking_seen for r in runs if r.dispatched_seen and r.picking_seen]
        ),
        "activities_per_workflow": plan.count(STEP_ACTIVITY),
        "activity_types": activity_types,
        "plan": "".join(plan),
        "history_events_to_dispatched": len(cut),
        "mean_breakdown_ms": pipeline_breakdown,
        "mean_activity_run_ms": pipeline_runs,
        "cpu": cpu,
        "cpu_ms_per_order": cpu_per_order(cpu, args.orders),
        "machine_busy_pct_before": others_before,
    }
    log(f"pipeline: {result['pipeline']['orders_per_s']} orders/s")
    disturbed("pipeline", cpu, result["notes"])
    left = await terminate_all(client, [f"order-{o}" for o in warm + measured])
    if left:
        result["notes"].append(f"{left} workflows still running after terminating the orders")
    stop(worker)

    # 4. Floor, same server, own worker process.
    if not args.skip_floor:
        loop = asyncio.get_running_loop()
        notified = _Notified()
        transport, _ = await loop.create_datagram_endpoint(lambda: notified, local_addr=(LOOPBACK, 0))
        try:
            notify_port = transport.get_extra_info("sockname")[1]
            floor_queue = f"bench-floor-{run_id}"
            floor_log = logs / "floor-worker.log"
            floor = spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.floor",
                    "--address",
                    settings.temporal_address,
                    "--task-queue",
                    floor_queue,
                    "--threads",
                    str(settings.worker_activity_threads),
                ],
                {**os.environ, NOTIFY_ENV: f"{LOOPBACK}:{notify_port}", "PYTHONUNBUFFERED": "1"},
                floor_log,
            )
            await wait_pollers(client, floor_queue, floor, floor_log)
            if args.warmup:
                ids = [f"floor-W{run_id}-{i:05d}" for i in range(args.warmup)]
                await run_floor(client, floor_queue, plan, ids, min(args.concurrency, len(ids)), notified)
            floor_pids = {"temporal": temporal.pid, "worker": floor.pid, "driver": os.getpid()}
            floor_others_before = await wait_quiet(floor_pids, args.quiet_wait, args.quiet_threshold, log)
            log(f"floor: {args.orders} workflows of plan {''.join(plan)}, {args.concurrency} in flight ...")
            meter = CpuMeter(floor_pids)
            ids = [f"floor-P{run_id}-{i:05d}" for i in range(args.orders)]
            latencies, floor_wall, lost = await run_floor(client, floor_queue, plan, ids, args.concurrency, notified)
            floor_cpu = meter.read()
            floor_breakdown, floor_runs = await sample_breakdowns(client, ids, list)
            stop(floor)
        finally:
            transport.close()
        result["floor"] = {
            "wall_s": round(floor_wall, 2),
            "orders_per_s": round(args.orders / floor_wall, 2),
            "intake_to_done_ms": summary_ms(latencies),
            "plan": "".join(plan),
            "activities_per_workflow": plan.count(STEP_ACTIVITY),
            "mean_breakdown_ms": floor_breakdown,
            "mean_activity_run_ms": floor_runs,
            "cpu": floor_cpu,
            "cpu_ms_per_order": cpu_per_order(floor_cpu, args.orders),
            "machine_busy_pct_before": floor_others_before,
        }
        if lost:
            result["notes"].append(f"floor: {lost} wait notices lost (update sent after 10 s)")
        result["cpu_ratio_floor_to_pipeline"] = round(
            result["floor"]["cpu_ms_per_order"]["bench_total"] / result["pipeline"]["cpu_ms_per_order"]["bench_total"],
            3,
        )
        result["ratio_pipeline_to_floor"] = round(
            result["pipeline"]["orders_per_s"] / result["floor"]["orders_per_s"], 3
        )
        log(f"floor: {result['floor']['orders_per_s']} workflows/s")
        disturbed("floor", floor_cpu, result["notes"])

    await asyncio.to_thread(stop, simulator)
    await asyncio.to_thread(stop, temporal)
    return result


def render(result: dict[str, Any]) -> str:
    p = result["pipeline"]
    out = [
        f"orderflow bench {result['date']}: {result['orders']} orders, {result['concurrency']} in flight "
        f"(warm-up {result['warmup']})",
        f"machine: {result['machine']['nproc']} cores, {result['machine']['mem_gib']} GiB, "
        f"Python {result['machine']['python']}, {result['machine']['temporal']}",
        "",
        f"pipeline  {p['orders_per_s']:8.2f} orders/s   ({p['wall_s']} s)",
    ]
    f = result.get("floor")
    if f:
        out.append(f"floor     {f['orders_per_s']:8.2f} workflows/s ({f['wall_s']} s)")
        out.append(
            f"ratio pipeline/floor  {result['ratio_pipeline_to_floor']:.2f} (orders/s);  "
            f"{result['cpu_ratio_floor_to_pipeline']:.2f} (CPU-ms per order, floor/pipeline)"
        )
    out += [
        "",
        f"activities per workflow up to DISPATCHED: {p['activities_per_workflow']}  (plan {p['plan']}: "
        "a activity, s search-attribute upsert, u dispatch update, c child start)",
        "  " + ", ".join(p["activity_types"]),
        "",
        "latency (ms)                      p50       p99       max",
    ]

    def row(name: str, s: dict[str, float]) -> str:
        return f"  {name:<30}{s.get('p50', 0):>8.0f}  {s.get('p99', 0):>8.0f}  {s.get('max', 0):>8.0f}"

    out.append(row("intake → ALLOCATED (locked)", p["intake_to_allocated_ms"]))
    out.append(row("intake → DISPATCHED (row seen)", p["intake_to_dispatched_ms"]))
    out.append(row("intake → DISPATCHED (event at)", p["intake_to_dispatched_event_at_ms"]))
    out.append(row("PICKING seen → DISPATCHED seen", p["picking_seen_to_dispatched_ms"]))
    if f:
        out.append(row("floor intake → done", f["intake_to_done_ms"]))
    keys = ("total", "act_queue", "act_run", "wft_queue", "wft_run", "other", "update_wait")
    out += ["", "mean per workflow, ms (server event times, start → DISPATCHED recorded; sample of 20)"]
    out.append("  " + " " * 10 + "".join(f"{k:>12}" for k in keys))
    for name, b in (("pipeline", p["mean_breakdown_ms"]), ("floor", f["mean_breakdown_ms"] if f else None)):
        if b:
            out.append(f"  {name:<10}" + "".join(f"{b[k]:>12.0f}" for k in keys))
    out.append(
        "  pipeline activity run (ms): "
        + ", ".join(f"{name} {ms:.0f}" for name, ms in p["mean_activity_run_ms"].items())
    )
    out += ["", "CPU during the measured run (2 cores = 2 CPU-s per wall second)"]
    for name, section in (("pipeline", p), ("floor", f)):
        if section:
            c = section["cpu"]
            procs = ", ".join(f"{k} {v}" for k, v in c["process_cpu_s"].items())
            per = ", ".join(f"{k} {v}" for k, v in section["cpu_ms_per_order"].items())
            out.append(
                f"  {name:<9} wall {c['wall_s']} s, CPU-s: {procs}; others {c['others_cpu_s']}; "
                f"machine busy {c['machine_busy_pct']}% (before start {section['machine_busy_pct_before']}%), "
                f"iowait {c['machine_iowait_pct']}%"
            )
            out.append(f"  {'':<9} CPU-ms per order: {per}")
    for note in result["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200, help="orders (and floor workflows) measured")
    parser.add_argument("--concurrency", type=int, default=100, help="orders in flight at most")
    parser.add_argument("--warmup", type=int, default=5, help="orders run first, not measured (0: none)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole bench")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between read-model polls")
    parser.add_argument(
        "--sim-step-seconds",
        type=float,
        default=3600.0,
        help="simulator parcel step: long, so parcels stay put during the run (one tracker poll each)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=180.0, help="seconds to wait for a quiet machine before each measured phase"
    )
    parser.add_argument(
        "--quiet-threshold", type=float, default=15.0, help="machine busy share (%%) below which a phase may start"
    )
    parser.add_argument("--skip-floor", action="store_true", help="pipeline only")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--orders and --concurrency must be >= 1, --warmup >= 0")
    return args


def run_bench(
    args: argparse.Namespace,
    bench_fn: Callable[[argparse.Namespace, Path, Callable[[str], None]], Awaitable[dict[str, Any]]],
    render_fn: Callable[[dict[str, Any]], str],
    *,
    name: str,
) -> int:
    """The benches' shared main: a fresh temp dir, `--timeout` around the async run and a hard alarm 60 s behind
    it, the figures as text or `--json`, every child process stopped whatever happens (SIGTERM too), the temp dir
    kept on failure or `--keep`. Exit status: 0 done, 1 failed, 2 timed out, 130 interrupted."""
    tmp = Path(tempfile.mkdtemp(prefix=f"orderflow-{name.replace('.', '-')}-"))

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # the finally below stops the children

    signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        with hard_deadline(args.timeout + 60, kill_children_now, name):

            async def bounded() -> dict[str, Any]:
                async with asyncio.timeout(args.timeout):
                    return await bench_fn(args, tmp, log)

            result = asyncio.run(bounded())
        print(json.dumps(result, indent=2, ensure_ascii=False) if args.json else render_fn(result))
    except TimeoutError:
        log(f"bench did not finish within {args.timeout:.0f}s (see logs in {tmp})")
        args.keep, status = True, 2
    except KeyboardInterrupt:
        log(f"interrupted (logs in {tmp})")
        args.keep, status = True, 130
    except Exception as exc:
        log(f"bench failed: {exc!r} (logs in {tmp})")
        args.keep, status = True, 1
    finally:
        for proc in reversed(list(_CHILDREN)):
            with contextlib.suppress(Exception):
                stop(proc, timeout=10)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), bench, render, name="bench")


if __name__ == "__main__":
    sys.exit(main())
