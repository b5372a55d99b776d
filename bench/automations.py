"""What automation costs the order pipeline, and how many firings per second it sustains (`make bench`).

Each phase in a room of its own — a fresh Temporal dev server, carrier simulator and SQLite database with 20 enabled
rules (rules/default_automations.yaml + bench/automation_rules.yaml) — the real worker in its own process:

1. **off**: the worker with `ORDERFLOW_AUTOMATIONS_ENABLED=false` (events are still written in each change's
   transaction, nothing is matched or fired) runs N orders to DISPATCHED as bench.pipeline does (≤ C in flight);
2. **on**: in a fresh room, a worker with automations on runs N orders; the measured window lasts until every event
   of the phase is handled and every run it started has finished, so the automation work is in its CPU;
3. **burst**: with the last on phase's worker, B `order_created` events for existing orders are written at once
   (one transaction, as a bulk import would); firings/s = the runs they started / (write → last run finished).

`--rounds R` (2) runs R rounds of both phases in the order off, on | on, off | off, on … (ABBA: a machine that
drifts slower or faster over the run favours neither), and each mode's figures pool its rounds: the p99 over all
R × N orders, CPU-ms over all of them. One pair of 1,000-order phases moved the p99 ratio by ±8% between
identical runs; the pooled figure is the verdict, each round's is printed beside it.

Printed: intake → ALLOCATED p50/p99, orders/s, CPU-ms per order (every bench process) for off and on and their
ratio, firings per order, event → run started latency, and the burst's firings/s. Goals (issue 12): on/off ≤ 1.10
for the p99 and the CPU-ms per order; ≥ 50 firings/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.pipeline import (
    CpuMeter,
    connect_when_ready,
    cpu_per_order,
    disturbed,
    free_port,
    machine_facts,
    prepare_database,
    run_bench,
    run_pipeline,
    spawn,
    stop,
    summary_ms,
    terminate_all,
    wait_pollers,
    wait_quiet,
    wait_tcp,
)
from core.config import PROJECT_ROOT, Settings
from core.db import make_engine, unit_of_work
from core.secrets import with_local_secrets
from dev.stack import LOOPBACK, children_of, temporal_argv, temporal_binary
from models.tables import AutomationEvent
from services.automation import store

RULE_FILES = (PROJECT_ROOT / "rules" / "default_automations.yaml", PROJECT_ROOT / "bench" / "automation_rules.yaml")
UNFINISHED = ("running", "waiting")


def load_rules(db_path: Path) -> None:
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        for path in RULE_FILES:
            store.load_file(engine, path, by="bench", now=datetime.now(UTC))
    finally:
        engine.dispose()


def count_enabled(db_path: Path) -> int:
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        return sum(1 for stored in store.in_force(engine) if stored.rule.enabled)
    finally:
        engine.dispose()


def _db(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(db_path), timeout=30, isolation_level=None)


def forget_pending_events(db_path: Path) -> int:
    """The off phase's events, written while nothing fired: handled, so the on phase's dispatcher starts clean."""
    with _db(db_path) as db:
        return db.execute(
            "UPDATE automation_events SET handled_at = ? WHERE handled_at IS NULL", (datetime.now(UTC).isoformat(),)
        ).rowcount


def pending(db_path: Path, after_event_id: int) -> tuple[int, int]:
    """(events not yet handled, runs not finished) since `after_event_id`."""
    with _db(db_path) as db:
        events = db.execute(
            "SELECT count(*) FROM automation_events WHERE id > ? AND handled_at IS NULL", (after_event_id,)
        ).fetchone()[0]
        runs = db.execute(
            f"SELECT count(*) FROM automation_runs WHERE state IN ({','.join('?' * len(UNFINISHED))})", UNFINISHED
        ).fetchone()[0]
    return int(events), int(runs)


def last_event_id(db_path: Path) -> int:
    with _db(db_path) as db:
        return int(db.execute("SELECT coalesce(max(id), 0) FROM automation_events").fetchone()[0])


async def drained(db_path: Path, after_event_id: int, limit_s: float) -> float:
    """Waits until every event since `after_event_id` is handled and no run is unfinished; returns when."""
    deadline = time.monotonic() + limit_s
    while True:
        events, runs = await asyncio.to_thread(pending, db_path, after_event_id)
        if not events and not runs:
            return time.time()
        if time.monotonic() > deadline:
            raise RuntimeError(f"automation not drained after {limit_s:.0f}s: {events} events, {runs} runs left")
        await asyncio.sleep(0.1)


def runs_since(db_path: Path, after_event_id: int) -> dict[str, Any]:
    """The runs the phase's events started: how many, their states, and event → run started latency."""
    with _db(db_path) as db:
        rows = db.execute(
            "SELECT r.state, e.at, r.started_at, r.finished_at FROM automation_runs r"
            " JOIN automation_events e ON e.key = r.event_key WHERE e.id > ?",
            (after_event_id,),
        ).fetchall()
    states: dict[str, int] = {}
    lags, spans = [], []
    for state, event_at, started_at, finished_at in rows:
        states[state] = states.get(state, 0) + 1
        lags.append(_at(started_at) - _at(event_at))
        if finished_at:
            spans.append(_at(finished_at) - _at(started_at))
    return {"runs": len(rows), "states": states, "event_to_run_ms": summary_ms(lags), "run_ms": summary_ms(spans)}


def _at(text: str) -> float:
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def write_burst(db_path: Path, order_nos: Sequence[str], size: int, tag: str) -> float:
    """`size` order_created events for existing orders in one transaction; returns when it committed."""
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        with unit_of_work(engine) as session:
            for i in range(size):
                order_no = order_nos[i % len(order_nos)]
                session.add(AutomationEvent(key=f"burst-{tag}-{i}", kind="order_created", subject=order_no, data={}))
        return time.time()
    finally:
        engine.dispose()


def finished_after(db_path: Path, tag: str) -> tuple[int, float]:
    """The burst's runs: how many, and when the last one finished (epoch seconds)."""
    with _db(db_path) as db:
        count, last = db.execute(
            "SELECT count(*), max(finished_at) FROM automation_runs WHERE event_key LIKE ?", (f"burst-{tag}-%",)
        ).fetchone()
    return int(count), (_at(last) if last else 0.0)


@dataclass(frozen=True)
class Room:
    """What a phase runs in: its server, simulator and database, where logs go."""

    args: argparse.Namespace
    settings: Settings
    client: Client
    db_path: Path
    sim_url: str
    pids: dict[str, int]
    logs: Path
    log: Callable[[str], None]
    notes: list[str]


async def phase(room: Room, name: str, *, enabled: bool) -> tuple[dict[str, Any], subprocess.Popen[bytes], list[str]]:
    """N orders on a fresh worker with automations on or off; the worker is left running (the burst uses it)."""
    args, settings, client, db_path, log = room.args, room.settings, room.client, room.db_path, room.log
    logs, pids, sim_url, notes = room.logs, room.pids, room.sim_url, room.notes
    queue = f"{settings.task_queue}-{name}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "ORDERFLOW_CARRIER_SIM_URL": sim_url,
        "ORDERFLOW_TASK_QUEUE": queue,
        "ORDERFLOW_STATE_DIR": str(settings.state_dir),
        "ORDERFLOW_AUTOMATIONS_ENABLED": "true" if enabled else "false",
        "PYTHONUNBUFFERED": "1",
    }
    worker_log = logs / f"worker-{name}.log"
    worker = spawn([sys.executable, str(PROJECT_ROOT / "worker.py")], env, worker_log)
    await wait_pollers(client, queue, worker, worker_log)
    tag = uuid.uuid4().hex[:6]
    warm = [f"W{name[:2]}{tag}-{i:05d}" for i in range(args.warmup)]
    measured = [f"P{name[:2]}{tag}-{i:05d}" for i in range(args.orders)]
    if warm:
        await run_pipeline(client, db_path, queue, warm, min(args.concurrency, len(warm)), args.poll)
        if enabled:
            await drained(db_path, 0, args.drain_timeout)
    if not enabled:
        forget_pending_events(db_path)
    phase_pids = {**pids, "worker": worker.pid}
    # The worker's outbox process (the notice relay, the automation dispatcher): its CPU is the phase's too.
    phase_pids.update({f"outboxes{'' if i == 0 else i}": pid for i, pid in enumerate(children_of(worker.pid))})
    busy_before = await wait_quiet(phase_pids, args.quiet_wait, args.quiet_threshold, log)
    first_event = last_event_id(db_path)
    log(f"{name}: {args.orders} orders, {args.concurrency} in flight, automations {'on' if enabled else 'off'} ...")
    meter = CpuMeter(phase_pids)
    runs, wall = await run_pipeline(client, db_path, queue, measured, args.concurrency, args.poll)
    dispatched_by = time.time()
    if enabled:
        done_at = await drained(db_path, first_event, args.drain_timeout)
        log(f"{name}: automation drained {done_at - dispatched_by:.1f}s after the last dispatch")
    cpu = meter.read()
    result: dict[str, Any] = {
        "_allocated_s": [r.allocated_at - r.t_submit for r in runs if r.allocated_at],
        "_dispatched_s": [r.dispatched_seen - r.t_submit for r in runs if r.dispatched_seen],
        "orders": args.orders,
        "wall_s": round(wall, 2),
        "orders_per_s": round(args.orders / wall, 2),
        "intake_to_allocated_ms": summary_ms([r.allocated_at - r.t_submit for r in runs if r.allocated_at]),
        "intake_to_dispatched_ms": summary_ms([r.dispatched_seen - r.t_submit for r in runs if r.dispatched_seen]),
        "cpu": cpu,
        "cpu_ms_per_order": cpu_per_order(cpu, args.orders),
        "machine_busy_pct_before": busy_before,
    }
    if enabled:
        result["automation"] = await asyncio.to_thread(runs_since, db_path, first_event)
        result["automation"]["drained_after_last_dispatch_s"] = round(done_at - dispatched_by, 2)
        result["firings_per_order"] = round(result["automation"]["runs"] / args.orders, 2)
    disturbed(name, cpu, notes)
    return result, worker, warm + measured


@asynccontextmanager
async def room_for(
    args: argparse.Namespace, tmp: Path, name: str, log: Callable[[str], None], notes: list[str]
) -> AsyncIterator[tuple[Room, list[subprocess.Popen[bytes]]]]:
    """A fresh Temporal dev server, carrier simulator and database for one phase: neither phase inherits the
    other's workflows, rows or server history (the one that ran second used to pay for the first's)."""
    base = tmp / name
    base.mkdir()
    settings = Settings(
        _env_file=None,
        state_dir=base,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-auto-{uuid.uuid4().hex[:6]}",
    )
    settings = with_local_secrets(
        settings.model_copy(update={"temporal_address": f"{LOOPBACK}:{settings.temporal_port}"})
    )
    logs = base / "logs"
    logs.mkdir()
    temporal_log = logs / "temporal.log"
    temporal = spawn([*temporal_argv(temporal_binary(), settings), "--headless"], dict(os.environ), temporal_log)
    sim_port = free_port()
    sim_url = f"http://{LOOPBACK}:{sim_port}"
    sim_log = logs / "simulator.log"
    simulator = spawn(
        [sys.executable, "-m", "dev.simulator.carriers", "--host", LOOPBACK, "--port", str(sim_port),
         "--step-seconds", "3600", "--log-level", "warning"],
        dict(os.environ),
        sim_log,
    )  # fmt: skip
    try:
        db_path = base / "orderflow.db"
        for note in prepare_database(db_path, args.orders + args.warmup):
            if note not in notes:
                notes.append(note)
        load_rules(db_path)
        await asyncio.to_thread(wait_tcp, settings.temporal_port, temporal, temporal_log)
        await asyncio.to_thread(wait_tcp, sim_port, simulator, sim_log)
        client = await connect_when_ready(settings)
        pids = {"temporal": temporal.pid, "simulator": simulator.pid, "driver": os.getpid()}
        yield Room(args, settings, client, db_path, sim_url, pids, logs, log, notes), [simulator, temporal]
    finally:
        await asyncio.to_thread(stop, simulator)
        await asyncio.to_thread(stop, temporal)


async def burst(
    args: argparse.Namespace, room: Room, worker: subprocess.Popen[bytes], orders: list[str], log: Callable[[str], None]
) -> dict[str, Any]:
    """B events at once on the running worker (its orders are still there to be the subjects)."""
    pids, db_path = room.pids, room.db_path
    tag = uuid.uuid4().hex[:6]
    burst_pids = {
        **pids,
        "worker": worker.pid,
        **{f"outboxes{i or ''}": c for i, c in enumerate(children_of(worker.pid))},
    }
    busy = await wait_quiet(burst_pids, args.quiet_wait, args.quiet_threshold, log)
    log(f"burst: {args.burst} order_created events at once ...")
    meter = CpuMeter(burst_pids)
    written = await asyncio.to_thread(write_burst, db_path, orders[-args.orders :], args.burst, tag)
    await drained(db_path, 0, args.drain_timeout)
    count, last = await asyncio.to_thread(finished_after, db_path, tag)
    burst_cpu = meter.read()
    span = max(last - written, 1e-3)
    return {
        "events": args.burst,
        "runs": count,
        "seconds": round(span, 2),
        "firings_per_s": round(count / span, 1),
        "cpu": burst_cpu,
        "cpu_ms_per_firing": cpu_per_order(burst_cpu, max(count, 1)),
        "machine_busy_pct_before": busy,
    }


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's rounds as one: latencies over all their orders, CPU and wall time summed; each round beside."""
    orders = sum(r["orders"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    cpu_s: dict[str, float] = {}
    for r in rounds:
        for name, seconds in r["cpu"]["process_cpu_s"].items():
            cpu_s[name] = cpu_s.get(name, 0.0) + seconds
    out: dict[str, Any] = {
        "orders": orders,
        "wall_s": round(wall, 2),
        "orders_per_s": round(orders / wall, 2),
        "intake_to_allocated_ms": summary_ms([s for r in rounds for s in r.pop("_allocated_s")]),
        "intake_to_dispatched_ms": summary_ms([s for r in rounds for s in r.pop("_dispatched_s")]),
        "cpu_ms_per_order": cpu_per_order({"process_cpu_s": cpu_s}, orders),
        "rounds": rounds,
    }
    automations = [r["automation"] for r in rounds if "automation" in r]
    if automations:
        runs = sum(a["runs"] for a in automations)
        states: dict[str, int] = {}
        for a in automations:
            for state, count in a["states"].items():
                states[state] = states.get(state, 0) + count
        out["automation"] = {**automations[-1], "runs": runs, "states": states}  # latencies: the last round's
        out["firings_per_order"] = round(runs / orders, 2)
    return out


async def bench(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.automations", *sys.argv[1:]]),
        "orders": args.orders,
        "concurrency": args.concurrency,
        "burst": args.burst,
        "machine": machine_facts(),
        "notes": [],
    }
    notes: list[str] = result["notes"]

    rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    sequence = [mode for i in range(args.rounds) for mode in (("off", "on") if i % 2 == 0 else ("on", "off"))]
    last_on = max(i for i, mode in enumerate(sequence) if mode == "on")
    for index, mode in enumerate(sequence):
        name = f"{mode}{len(rounds[mode]) + 1}"
        async with room_for(args, tmp, name, log, notes) as (room, _):
            if "rules_enabled" not in result:
                result["rules_enabled"] = await asyncio.to_thread(count_enabled, room.db_path)
            measured, worker, orders = await phase(room, name, enabled=mode == "on")
            rounds[mode].append(measured)
            if index == last_on:
                result["burst_result"] = await burst(args, room, worker, orders, log)
            await terminate_all(room.client, [f"order-{no}" for no in orders])
            stop(worker)
    result["off"], result["on"] = pooled(rounds["off"]), pooled(rounds["on"])

    def ratio(path: Sequence[str]) -> float:
        a, b = result["on"], result["off"]
        for key in path:
            a, b = a[key], b[key]
        return round(float(a) / float(b), 3)

    result["ratios_on_to_off"] = {
        "intake_to_allocated_p99": ratio(["intake_to_allocated_ms", "p99"]),
        "intake_to_allocated_p50": ratio(["intake_to_allocated_ms", "p50"]),
        "cpu_ms_per_order": ratio(["cpu_ms_per_order", "bench_total"]),
        "orders_per_s": ratio(["orders_per_s"]),
    }
    return result


def render(result: dict[str, Any]) -> str:
    lines = [
        f"automation bench {result['date']}: {result['orders']} orders per phase, {result['concurrency']} in flight,"
        f" {result['rules_enabled']} rules enabled; machine {result['machine']}",
    ]
    for name in ("off", "on"):
        p = result[name]
        lines.append(
            f"  {name:>3}: {p['orders_per_s']} orders/s, intake→ALLOCATED p50 {p['intake_to_allocated_ms']['p50']} ms"
            f" p99 {p['intake_to_allocated_ms']['p99']} ms, CPU {p['cpu_ms_per_order']['bench_total']} ms/order"
            f" ({p['cpu_ms_per_order']})"
        )
        for i, r in enumerate(p["rounds"], 1):
            lines.append(
                f"       round {i}: {r['orders_per_s']} orders/s, p99 {r['intake_to_allocated_ms']['p99']} ms,"
                f" CPU {r['cpu_ms_per_order']['bench_total']} ms/order"
            )
    auto = result["on"]["automation"]
    lines.append(
        f"  firings: {auto['runs']} runs ({result['on']['firings_per_order']} per order, {auto['states']}),"
        f" event→run started {auto['event_to_run_ms']}, run {auto['run_ms']},"
        f" drained {auto['drained_after_last_dispatch_s']} s after the last dispatch"
    )
    burst = result["burst_result"]
    lines.append(
        f"  burst: {burst['events']} events → {burst['runs']} runs in {burst['seconds']} s"
        f" = {burst['firings_per_s']} firings/s, CPU {burst['cpu_ms_per_firing']} ms per firing"
    )
    r = result["ratios_on_to_off"]
    lines.append(
        f"  on/off: p99 intake→ALLOCATED {r['intake_to_allocated_p99']}, p50 {r['intake_to_allocated_p50']},"
        f" CPU-ms/order {r['cpu_ms_per_order']}, orders/s {r['orders_per_s']} (goals: ≤ 1.10, ≤ 1.10; ≥ 50 firings/s)"
    )
    lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.automations", description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1000, help="orders per phase (off, on)")
    parser.add_argument("--concurrency", type=int, default=100, help="orders in flight at most")
    parser.add_argument("--warmup", type=int, default=5, help="orders run first in each phase, not measured")
    parser.add_argument("--burst", type=int, default=1000, help="events written at once in the burst phase")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both phases, ABBA order, pooled")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole bench")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds for the automation to drain")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between read-model polls")
    parser.add_argument("--quiet-wait", type=float, default=180.0, help="seconds to wait for a quiet machine")
    parser.add_argument("--quiet-threshold", type=float, default=15.0, help="busy share (%%) a phase may start below")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1 or args.warmup < 0 or args.burst < 1 or args.rounds < 1:
        parser.error("--orders, --concurrency, --burst and --rounds must be >= 1, --warmup >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), bench, render, name="bench.automations")


if __name__ == "__main__":
    sys.exit(main())
