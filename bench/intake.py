"""`make bench`, after bench.pipeline: order intake through the HTTP API under an open-loop load, against the
bare Temporal floor (a plain `start_workflow`).

    python -m bench.intake [--rates 20,100] [--seconds 30] [--json] [--timeout 1200] [--keep]
                           [--no-worker] [--idempotency-key] [--skip-floor]

Open loop: request i of a rate R is sent at t0 + i/R whatever happened to the earlier ones (no waiting for
answers), and its latency counts from that scheduled time, so a server that stalls shows up as latency (no
coordinated omission). The generator runs in this process; so that it neither queues nor stalls:
httpx.AsyncClients of 25 connections each, round robin, up to `--connections` (httpcore's pool scans all its
connections per request: one pool of hundreds made the generator the bottleneck), the cyclic GC off while
sending (a full collection stopped the loop for ~0.3 s), and this process at nice -5 once the servers are up
(they keep 0). What is left of the generator's lateness is reported ("lag"), with the wait for a client
connection ("pool").

One run, in a fresh temp dir, everything on free loopback ports:
  1. a Temporal dev server (dev.stack.temporal_argv: db file, WAL pragmas, search attributes), a fresh
     SQLite database (migrated, seeded, stock topped up, credit limits raised: bench.pipeline's), an ops user
     (the integration: a sales token may submit only its own orders) whose token the requests carry;
  2. the real worker (`worker.py`, own process), so the accepted orders really run (auto-approved small
     orders: customers C-1001..C-1004, totals under 260 CNY; they run up to PICKING and wait there for a
     dispatch that never comes);
  3. the API: `uvicorn --factory entrypoints.api.app:serve` as users run it (one process, uvicorn's defaults),
     configured by TEMPORAL_ADDRESS, DATABASE_URL, ORDERFLOW_TASK_QUEUE, ORDERFLOW_STATE_DIR (the worker's state
     dir, so both use the same secrets);
  4. per rate: `POST /orders` with `Authorization: Bearer TOKEN` and a canonical order of a unique number,
     1 s of warm-up then `--seconds` measured; then every accepted order must have exactly one workflow
     (visibility, by workflow id prefix); how many reached PICKING in the meantime; then that rate's
     workflows are terminated and the machine allowed to go quiet before the next phase;
  5. the floor at the same rates: `client.start_workflow` of bench.floor's FloorWorkflow with an empty plan
     (it would end at its first workflow task) on its own task queue, straight to the same server from this
     process: no HTTP, no database, no worker (the start is what intake measures), Temporal's default data
     converter; then terminated like the orders;
  6. figures per phase: latency p50/p90/p99/max from the scheduled send time, achieved accepted per second
     (answers 202 / started workflows arriving within the measured window, per second of it), answers by
     status, where the latency went (lag, pool, request on the wire → the workflow's start time on the server
     as visibility records it → answer), CPU seconds per process over the window (/proc), and the ratios
     ours/floor.

Never part of the tests. `--timeout` bounds the whole bench, a hard alarm 60 s later kills everything.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from bench.floor import FloorWorkflow
from bench.pipeline import (
    CpuMeter,
    _worker_env,
    bench_order,
    connect_when_ready,
    disturbed,
    free_port,
    machine_facts,
    percentile,
    prepare_database,
    run_bench,
    spawn,
    stop,
    terminate_all,
    wait_pollers,
    wait_quiet,
    wait_tcp,
)
from bench.tracking import git_facts, source_digest
from core.config import PROJECT_ROOT, Settings
from core.db import make_engine, unit_of_work
from core.secrets import with_local_secrets
from dev.stack import LOOPBACK, temporal_argv, temporal_binary
from models.status import Role
from services.users import add_user
from workflows.contract import order_workflow_id

WARMUP_SECONDS = 1.0
POOL_SIZE = 25  # connections per httpx client (see phase_api)
API_ARGV = ("-m", "uvicorn", "--factory", "entrypoints.api.app:serve")  # dev.stack / docker-compose: uvicorn's defaults
NO_ANSWER = 0  # status of a request that got no HTTP answer (timeout, connection error)


# --- the open-loop generator ---------------------------------------------------------------------------


@dataclass
class Shot:
    """One request: when it was due, when it really went out, when its answer was in (monotonic seconds)."""

    index: int
    due: float
    sent: float = 0.0  # its task began (≈ due, unless the generator's loop was late)
    wire: float = 0.0  # its request headers were being written to a connection (after any client-pool wait)
    done: float = 0.0
    status: int = NO_ANSWER
    error: str = ""
    started: float | None = None  # the workflow's start time on the server (visibility), on the same clock

    @property
    def latency(self) -> float:
        return self.done - self.due


@dataclass
class Window:
    start: float
    end: float
    cpu: dict[str, Any]
    wall_offset: float  # time.time() - loop.time(): server timestamps onto the loop's clock


def ms_summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    ms = [1000 * v for v in values]
    return {
        "p50": round(percentile(ms, 50), 1),
        "p90": round(percentile(ms, 90), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1),
        "mean": round(sum(ms) / len(ms), 1),
    }


async def open_loop(
    rate: float,
    seconds: float,
    fire: Callable[[Shot], Awaitable[tuple[int, str]]],
    meter: Callable[[], CpuMeter],
) -> tuple[list[Shot], Window]:
    """Arrivals at t0 + i/rate for WARMUP_SECONDS + seconds; each is sent at its time in its own task. The CPU
    meter covers the measured window exactly (first measured arrival → window end)."""
    # The cyclic GC stopped this loop for up to ~0.3 s in a full collection (measured): off while sending.
    gc.collect()
    gc.disable()
    try:
        return await _open_loop(rate, seconds, fire, meter)
    finally:
        gc.enable()


async def _open_loop(
    rate: float,
    seconds: float,
    fire: Callable[[Shot], Awaitable[tuple[int, str]]],
    meter: Callable[[], CpuMeter],
) -> tuple[list[Shot], Window]:
    loop = asyncio.get_running_loop()
    wall_offset = time.time() - loop.time()
    warm = round(WARMUP_SECONDS * rate)
    total = warm + round(seconds * rate)
    t0 = loop.time() + 0.1
    shots = [Shot(i, t0 + i / rate) for i in range(total)]
    window_start = t0 + warm / rate
    window_end = window_start + seconds
    tasks: list[asyncio.Task[None]] = []

    async def one(shot: Shot) -> None:
        shot.sent = loop.time()
        try:
            shot.status, shot.error = await fire(shot)
        except Exception as exc:  # noqa: BLE001 - every failure is a figure, none stops the run
            shot.status, shot.error = NO_ANSWER, type(exc).__name__
        shot.done = loop.time()

    cpu_meter: CpuMeter | None = None
    for shot in shots:
        if shot.index == warm:
            cpu_meter = meter()
        delay = shot.due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(shot)))
    if cpu_meter is None:
        cpu_meter = meter()
    await asyncio.sleep(max(0.0, window_end - loop.time()))
    cpu = cpu_meter.read()
    await asyncio.gather(*tasks)
    return shots, Window(window_start, window_end, cpu, wall_offset)


def figures(shots: Sequence[Shot], window: Window, ok_status: int, rate: float, seconds: float) -> dict[str, Any]:
    """Latency of the requests due in the window; achieved = ok answers arriving in the window per second."""
    measured = [s for s in shots if window.start <= s.due < window.end]
    lag = [s.sent - s.due for s in measured]
    wired = [s for s in measured if s.wire]
    split = [s for s in measured if s.status == ok_status and s.started is not None]
    answers = collections.Counter(str(s.status) if s.status != NO_ANSWER else f"none:{s.error}" for s in measured)
    in_window = sum(1 for s in shots if s.status == ok_status and window.start <= s.done < window.end)
    last_due = max(s.due for s in shots)
    return {
        "offered_per_s": rate,
        "sent": len(measured),
        "ok": sum(1 for s in measured if s.status == ok_status),
        "answers": dict(sorted(answers.items())),
        "achieved_per_s": round(in_window / seconds, 2),
        "latency_ms": ms_summary([s.latency for s in measured]),
        # where the latency went: the generator's lateness, the wait for a client connection, request on the
        # wire → the workflow's start time on the server, that start → the answer in the generator's hands
        "send_lag_ms": ms_summary(lag),
        "client_pool_wait_ms": ms_summary([s.wire - s.sent for s in wired]),
        "wire_to_workflow_start_ms": ms_summary([s.started - s.wire for s in split if s.started is not None]),
        "workflow_start_to_answer_ms": ms_summary([s.done - s.started for s in split if s.started is not None]),
        "drain_s": round(max(s.done for s in shots) - last_due, 2),  # last arrival → last answer
        "cpu": window.cpu,
        "cpu_ms_per_request": {
            name: round(1000 * cpu_s / max(1, len(measured)), 2) for name, cpu_s in window.cpu["process_cpu_s"].items()
        },
        "warmup_requests": len(shots) - len(measured),
    }


# --- checks ----------------------------------------------------------------------------------------------


async def workflows_by_id(client: Client, prefix: str) -> tuple[collections.Counter[str], dict[str, float]]:
    """Executions (runs) per workflow id whose id starts with `prefix`, and each id's start time (epoch s)."""
    found: collections.Counter[str] = collections.Counter()
    started: dict[str, float] = {}
    async for execution in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'"):
        found[execution.id] += 1
        started[execution.id] = execution.start_time.timestamp()
    return found, started


async def one_workflow_each(
    client: Client, prefix: str, accepted: dict[str, Shot], wall_offset: float
) -> dict[str, Any]:
    """Every accepted id has exactly one execution (visibility can lag a moment behind the starts: retried).
    Sets each accepted shot's server start time."""
    deadline = time.monotonic() + 30
    while True:
        found, started = await workflows_by_id(client, prefix)
        missing = [w for w in accepted if found[w] == 0]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    for workflow_id, shot in accepted.items():
        if workflow_id in started:
            shot.started = started[workflow_id] - wall_offset
    wanted = set(accepted)
    return {
        "accepted": len(accepted),
        "workflows": sum(found.values()),
        "accepted_without_workflow": len(missing),
        "accepted_with_more_than_one": sum(1 for w in accepted if found[w] > 1),
        "workflows_of_unaccepted_requests": sum(n for w, n in found.items() if w not in wanted),
        "exactly_one_each": not missing and all(found[w] == 1 for w in accepted),
    }


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


# --- phases ----------------------------------------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    client: Client
    api_url: str
    token: str
    pids: dict[str, int]


async def phase_api(stack: Stack, run_id: str, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"I{run_id}-{int(rate)}"
    total = round((WARMUP_SECONDS + args.seconds) * rate)
    bodies = [
        json.dumps(bench_order(f"{tag}-{i:06d}", i).model_dump(mode="json"), ensure_ascii=False).encode()
        for i in range(total)
    ]
    headers = {"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"}
    # httpcore's pool scans all its connections for every request it queues or releases (O(n^2) for n
    # connections): with hundreds in flight one pool makes the generator the bottleneck. Small pools, round robin.
    shards = max(1, -(-args.connections // POOL_SIZE))
    limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    timeout = httpx.Timeout(args.request_timeout)
    async with contextlib.AsyncExitStack() as clients:
        pool = [
            await clients.enter_async_context(httpx.AsyncClient(base_url=stack.api_url, limits=limits, timeout=timeout))
            for _ in range(shards)
        ]
        answer = await pool[0].get("/healthz")
        answer.raise_for_status()

        async def fire(shot: Shot) -> tuple[int, str]:
            loop = asyncio.get_running_loop()

            async def trace(event: str, _info: dict[str, Any]) -> None:
                if event == "http11.send_request_headers.started":
                    shot.wire = loop.time()

            extra = {"Idempotency-Key": f"key-{tag}-{shot.index:06d}"} if args.idempotency_key else {}
            response = await pool[shot.index % shards].post(
                "/orders", content=bodies[shot.index], headers=headers | extra, extensions={"trace": trace}
            )
            return response.status_code, "" if response.status_code == 202 else response.text[:200]

        shots, window = await open_loop(rate, args.seconds, fire, lambda: CpuMeter(stack.pids))
    prefix = order_workflow_id(f"{tag}-")
    picking = await count(stack.client, f"WorkflowId STARTS_WITH '{prefix}' AND OrderStatus = 'PICKING'")
    after = round(asyncio.get_running_loop().time() - window.end, 1)
    accepted = {order_workflow_id(f"{tag}-{s.index:06d}"): s for s in shots if s.status == 202}
    checked = await one_workflow_each(stack.client, prefix, accepted, window.wall_offset)
    result = figures(shots, window, 202, rate, args.seconds)
    result["workflows"] = checked
    result["reached_picking"] = picking
    result["seconds_after_window_end"] = after
    examples = sorted({s.error for s in shots if s.status not in (202, NO_ANSWER)})[:3]
    if examples:
        result["error_examples"] = examples
    result["_ids"] = [order_workflow_id(f"{tag}-{i:06d}") for i in range(total)]
    return result


async def phase_floor(
    stack: Stack, floor: Client, run_id: str, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    tag = f"floor-I{run_id}-{int(rate)}"
    queue = f"bench-intake-floor-{run_id}"

    async def fire(shot: Shot) -> tuple[int, str]:
        shot.wire = shot.sent  # no client pool
        await asyncio.wait_for(
            floor.start_workflow(FloorWorkflow.run, [], id=f"{tag}-{shot.index:06d}", task_queue=queue),
            args.request_timeout,
        )
        return 1, ""

    shots, window = await open_loop(rate, args.seconds, fire, lambda: CpuMeter(stack.pids))  # API, worker idle
    started = {f"{tag}-{s.index:06d}": s for s in shots if s.status == 1}
    checked = await one_workflow_each(stack.client, f"{tag}-", started, window.wall_offset)
    result = figures(shots, window, 1, rate, args.seconds)
    result["answers"] = {("started" if k == "1" else k): v for k, v in result["answers"].items()}
    result["workflows"] = checked
    result["_ids"] = [f"{tag}-{i:06d}" for i in range(len(shots))]
    return result


async def settle(stack: Stack, ids: list[str], args: argparse.Namespace, log: Callable[[str], None]) -> str | None:
    """Terminate a phase's workflows (so its backlog does not load the next phase), wait for a quiet machine."""
    left = await terminate_all(stack.client, ids)
    busy = await wait_quiet(stack.pids, args.quiet_wait, args.quiet_threshold, log)
    if left:
        return f"{left} workflows still running after terminating a phase's"
    if busy >= args.quiet_threshold:
        return f"machine still {busy:.0f}% busy after {args.quiet_wait:.0f} s before a phase"
    return None


def ratios(ours: dict[str, Any], floor: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float, b: float) -> float | None:
        return round(a / b, 2) if b else None

    return {
        "latency_p50": div(ours["latency_ms"]["p50"], floor["latency_ms"]["p50"]),
        "latency_p99": div(ours["latency_ms"]["p99"], floor["latency_ms"]["p99"]),
        "achieved": div(ours["achieved_per_s"], floor["achieved_per_s"]),
    }


# --- orchestration ------------------------------------------------------------------------------------


def add_integration_user(db_path: Path, name: str) -> str:
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        with unit_of_work(engine) as session:
            return add_user(session, name, Role.OPS)  # an integration: ops submits any rep's orders
    finally:
        engine.dispose()


async def bench(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    settings = Settings(
        _env_file=None,
        state_dir=tmp,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-intake-{run_id}",
    )
    settings = with_local_secrets(
        settings.model_copy(update={"temporal_address": f"{LOOPBACK}:{settings.temporal_port}"})
    )
    logs = tmp / "logs"
    logs.mkdir()
    digest = source_digest()
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.intake", *sys.argv[1:]]),
        "rates": args.rates,
        "seconds": args.seconds,
        "warmup_s": WARMUP_SECONDS,
        "machine": machine_facts(),
        "git": git_facts(),
        "api": "uvicorn --factory entrypoints.api.app:serve, 1 process, uvicorn defaults (asyncio loop, "
        + ("httptools" if _importable("httptools") else "h11")
        + " HTTP parser, access log on, to a file)",
        "worker": "off (--no-worker): accepted orders wait in the task queue" if args.no_worker else "worker.py",
        "idempotency_key": args.idempotency_key,
        "phases": {},
        "notes": [],
    }

    # 1. Temporal dev server, database, the integration user (ops).
    temporal_log = logs / "temporal.log"
    temporal = spawn([*temporal_argv(temporal_binary(), settings), "--headless"], dict(os.environ), temporal_log)
    db_path = tmp / "orderflow.db"
    arrivals = sum(round((WARMUP_SECONDS + args.seconds) * rate) for rate in args.rates)
    result["notes"] += prepare_database(db_path, arrivals)
    token = add_integration_user(db_path, f"bench-{run_id}")
    await asyncio.to_thread(wait_tcp, settings.temporal_port, temporal, temporal_log)
    client = await connect_when_ready(settings)
    log(f"temporal dev server on {settings.temporal_address}")

    # 2. The worker; 3. the API, both configured by the environment, sharing the state dir (secrets).
    env = _worker_env(settings, db_path, f"http://{LOOPBACK}:{free_port()}", settings.task_queue)  # no carrier
    pids = {"temporal": temporal.pid, "bench": os.getpid()}
    if not args.no_worker:
        worker_log = logs / "worker.log"
        worker = spawn([sys.executable, str(PROJECT_ROOT / "worker.py")], env, worker_log)
        await wait_pollers(client, settings.task_queue, worker, worker_log)
        pids["worker"] = worker.pid
        log(f"worker up (pid {worker.pid})")
    api_port = free_port()
    api_log = logs / "api.log"
    api = spawn([sys.executable, *API_ARGV, "--host", LOOPBACK, "--port", str(api_port)], env, api_log)
    await asyncio.to_thread(wait_tcp, api_port, api, api_log)
    pids = {"api": api.pid, **pids}
    result["generator_nice"] = raise_priority(args.generator_nice)
    stack = Stack(settings, client, f"http://{LOOPBACK}:{api_port}", token, pids)
    log(f"API up on {stack.api_url} (pid {api.pid})")

    async def record(name: str, phase: dict[str, Any]) -> None:
        """Keep a phase's figures, check them, then clear its workflows away before the next phase."""
        ids = phase.pop("_ids")
        result["phases"][name] = phase
        log(
            f"{name}: achieved {phase['achieved_per_s']}/s, p50 {phase['latency_ms']['p50']} ms, "
            f"p99 {phase['latency_ms']['p99']} ms, answers {phase['answers']}"
        )
        disturbed(name, phase["cpu"], result["notes"])
        if not phase["workflows"]["exactly_one_each"]:
            result["notes"].append(f"{name}: NOT exactly one workflow per accepted request: {phase['workflows']}")
        if note := await settle(stack, ids, args, log):
            result["notes"].append(f"after {name}: {note}")

    # 4. Through the API, rate by rate.
    if note := await settle(stack, [], args, log):
        result["notes"].append(f"before the first phase: {note}")
    for rate in args.rates:
        log(f"api@{rate:g}: {rate:g} orders/s offered for {WARMUP_SECONDS:g} + {args.seconds:g} s ...")
        await record(f"api@{rate:g}", await phase_api(stack, run_id, rate, args))

    # 5. The floor: plain start_workflow from this process, Temporal's default converter, no worker.
    if args.skip_floor:
        result["notes"].append("floor skipped (--skip-floor)")
    else:
        floor = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        for rate in args.rates:
            log(f"floor@{rate:g}: {rate:g} starts/s offered for {WARMUP_SECONDS:g} + {args.seconds:g} s ...")
            phase = await phase_floor(stack, floor, run_id, rate, args)
            await record(f"floor@{rate:g}", phase)
            ours = result["phases"].get(f"api@{rate:g}")
            if ours:
                result.setdefault("ratio_ours_to_floor", {})[f"{rate:g}"] = ratios(ours, phase)

    if source_digest() != digest:
        result["notes"].append("the worker's / API's source files changed during the run: figures may mix code")
    await asyncio.to_thread(stop, api)
    if not args.no_worker:
        await asyncio.to_thread(stop, worker)
    await asyncio.to_thread(stop, temporal)
    return result


def raise_priority(nice: int) -> int:
    """Give this process's threads (the load generator and the floor's client) priority over the servers,
    so that on a saturated machine they still send on schedule: clients live elsewhere in production. Only
    after every child started (they would inherit it). Returns the nice value in force."""
    if nice >= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    try:
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)  # Linux: per thread
    except (OSError, ValueError):
        pass  # not permitted: the send lag in the figures shows what it costs
    return os.getpriority(os.PRIO_PROCESS, 0)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"orderflow intake bench {result['date']}: open loop, {result['warmup_s']:g} s warm-up + "
        f"{result['seconds']:g} s measured per rate; latency from the scheduled send time",
        f"machine: {m['nproc']} cores, {m['mem_gib']} GiB, Python {m['python']}, {m['temporal']}",
        f"code: commit {result['git']['commit']} ({result['git']['uncommitted_files']} uncommitted files)",
        f"API: {result['api']}",
        f"worker: {result['worker']}; Idempotency-Key header: {'yes' if result['idempotency_key'] else 'no'}",
        f"load generator: this process (httpx.AsyncClient; the floor: temporalio Client), nice "
        f"{result.get('generator_nice', 0)}",
        "",
        f"{'phase':<14}{'offered/s':>10}{'achieved/s':>11}{'ok/sent':>12}"
        f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  answers",
    ]
    for name, p in result["phases"].items():
        lat = p["latency_ms"]
        out.append(
            f"{name:<14}{p['offered_per_s']:>10g}{p['achieved_per_s']:>11.2f}{p['ok']:>7}/{p['sent']:<4}"
            f"{lat['p50']:>9.1f}{lat['p90']:>9.1f}{lat['p99']:>9.1f}{lat['max']:>9.1f}  {p['answers']}"
        )
    if result.get("ratio_ours_to_floor"):
        out += ["", "ours/floor     latency p50   latency p99   achieved"]
        for rate, r in result["ratio_ours_to_floor"].items():
            cells = [f"{r[k]:.2f}" if r[k] is not None else "-" for k in ("latency_p50", "latency_p99", "achieved")]
            out.append(f"  {rate + '/s':<12}{cells[0]:>12}{cells[1]:>14}{cells[2]:>11}")
    out += [
        "",
        "where the latency went, p50 / p99 ms: lag = the generator's lateness; pool = waiting for a client",
        "connection; wire→start = request on the wire → the workflow's start time on the server (HTTP, auth,",
        "validation, the API's queue, the start RPC until the server records it); start→answer = the RPC's",
        "reply, the response, back in the generator",
    ]
    for name, p in result["phases"].items():
        parts = [
            f"{label} {p[key].get('p50', 0):.1f} / {p[key].get('p99', 0):.1f}"
            for label, key in (
                ("lag", "send_lag_ms"),
                ("pool", "client_pool_wait_ms"),
                ("wire→start", "wire_to_workflow_start_ms"),
                ("start→answer", "workflow_start_to_answer_ms"),
            )
        ]
        out.append(f"  {name:<12} " + ";  ".join(parts))
    out += ["", "CPU-s over each measured window (2 cores = 2 CPU-s per wall second), CPU-ms per request"]
    for name, p in result["phases"].items():
        c = p["cpu"]
        procs = ", ".join(f"{k} {v}" for k, v in c["process_cpu_s"].items())
        per = ", ".join(f"{k} {v}" for k, v in p["cpu_ms_per_request"].items())
        out.append(
            f"  {name:<12} wall {c['wall_s']} s: {procs}; others {c['others_cpu_s']}; "
            f"machine busy {c['machine_busy_pct']}%, iowait {c['machine_iowait_pct']}%"
        )
        out.append(f"  {'':<12} per request: {per}")
    out += ["", "workflows (visibility, after the drain)"]
    for name, p in result["phases"].items():
        w = p["workflows"]
        line = (
            f"  {name:<12} accepted {w['accepted']}, workflows {w['workflows']}, "
            f"exactly one each: {'yes' if w['exactly_one_each'] else 'NO'}"
        )
        if "reached_picking" in p:
            line += f"; {p['reached_picking']} had reached PICKING {p['seconds_after_window_end']} s after the window"
        out.append(line)
    for name, p in result["phases"].items():
        for example in p.get("error_examples", []):
            out.append(f"error example ({name}): {example}")
    for note in result["notes"]:
        out.append(f"note: {note}")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.intake",
        description="Order intake through the HTTP API (open loop) against the bare Temporal floor.",
    )
    parser.add_argument("--rates", default="20,100", help="offered orders/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per rate (after 1 s warm-up)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds for the whole bench")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds one request may take")
    parser.add_argument("--connections", type=int, default=1000, help="client connection limit")
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="seconds to wait for a quiet machine before each phase"
    )
    parser.add_argument("--quiet-threshold", type=float, default=15.0, help="machine busy share (%%) that is quiet")
    parser.add_argument(
        "--idempotency-key", action="store_true", help="send a unique Idempotency-Key header with every order"
    )
    parser.add_argument(
        "--generator-nice", type=int, default=-5, help="nice value of the load generator (needs root; 0: leave it)"
    )
    parser.add_argument("--no-worker", action="store_true", help="no worker: the API's intake path alone")
    parser.add_argument("--skip-floor", action="store_true", help="the API phases only")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error("--rates takes numbers, e.g. 20,100")
    if not args.rates or min(args.rates) <= 0 or args.seconds <= 0:
        parser.error("--rates must be > 0 and --seconds > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), bench, render, name="bench.intake")


if __name__ == "__main__":
    sys.exit(main())
