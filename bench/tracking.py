"""`make bench`, third part: N parcels in flight with carrier `17track` — per-parcel polling against batching.

    python -m bench.tracking [--parcels 10000] [--interval 600] [--window SECONDS] [--concurrency 200]
                             [--sample 50] [--json] [--timeout SECONDS] [--keep]

What it measures is the steady state "nothing new, keep asking": the parcels never move during the run.

Set-up, in a fresh temp dir, everything on free loopback ports:
  - the carrier simulator (own process) in time mode with a step of 10^9 s, so every parcel stays at its first
    step (INFO_RECEIVED, one event); the N numbers are registered with its 17TRACK routes first (like
    dispatch-time registration), and their first answer is read once, to start every parcel from "known";
  - a SQLite database (core.migrate.upgrade) holding one `shipments` row per parcel (17track, INFO_RECEIVED,
    dispatched now) and the parcel's one event in `tracking_events`: what earlier sweeps would have recorded,
    so a sweep finds no news either.
Then two runs, each on its own Temporal dev server (dev.stack.temporal_argv: WAL pragmas, search attributes;
a fresh one per run, so server CPU and worker memory are the run's own) with its own worker process
(`worker.py`, configured by TEMPORAL_ADDRESS, DATABASE_URL, ORDERFLOW_CARRIER_SIM_URL, ORDERFLOW_TASK_QUEUE):
  A. per-parcel: N ShipmentTracking workflows with batched=False: each polls 17TRACK for its own parcel
     (activity poll_parcel, whose retry policy every `--interval` is the poller: one HTTP call a poll);
  B. batched: the same N with batched=True: each makes sure the carrier's CarrierPoller runs
     (ensure_carrier_poller, signal-with-start), then only waits; the poller sweeps the open shipments every
     `--interval`, 40 numbers per HTTP call.
Every workflow starts with known_status=INFO_RECEIVED and known_events=1, which is what the simulator answers,
so no poll or sweep ever has news and the (dummy) parent is never signalled. Starts are concurrent (at most
`--concurrency` in flight). After the last start the run waits for the first round (every parcel polled once;
the poller's first sweep) and for the worker and server to go quiet, then measures over a window: carrier HTTP
calls (the simulator's GET /sim/stats, differences), CPU seconds of the worker, the dev server and the
simulator (/proc), the worker's RSS (sampled each second; and its peak since start, VmHWM). Window: one
interval for A (each parcel polled once), one interval + 60 s for B (it must hold a sweep; the poller's sweeps
in the window are counted from its history). Then history events per run: a spread sample of ShipmentTracking
workflows, and every run of the CarrierPoller (following continue-as-new back to the first run).
At the end of each run its dev server is stopped (the workflows go with it: it is throw-away).

Never part of the tests. `--timeout` bounds the whole bench, a hard alarm 60 s later kills everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench.pipeline import (
    _worker_env,
    connect_when_ready,
    free_port,
    machine_facts,
    run_bench,
    spawn,
    stop,
    wait_pollers,
    wait_tcp,
)
from bench.procstat import machine_cpu_fields, process_cpu, process_memory
from core.config import PROJECT_ROOT, Settings
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from core.secrets import with_local_secrets
from dev.stack import LOOPBACK, temporal_argv, temporal_binary
from integrations.carriers import track17
from integrations.carriers.registry import carrier_base_url
from models.contracts import SweepOutcome, TrackingInput
from models.status import TrackingStatus
from models.tables import Shipment, TrackingEvent
from models.tracking import TrackingSnapshot
from workflows.contract import poller_workflow_id, tracking_workflow_id
from workflows.tracking import ShipmentTracking

CARRIER = track17.CODE
PRODUCTION_INTERVAL_S = 3600.0  # Settings.tracking_poll_interval
SIM_STEP_SECONDS = 1e9  # ~31 years: nothing moves while the bench runs
MODES = ("per-parcel", "batched")
MiB = 1024 * 1024
ENDINGS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued as new",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed out",
}


# --- samples of the processes and the carrier's call counter ---------------------------------------------


@dataclass
class Sample:
    t: float  # monotonic
    wall: float  # epoch seconds (compared with history event times)
    calls: dict[str, int]  # carrier API calls per route, cumulative
    cpu: dict[str, float]  # CPU seconds per named process, cumulative
    rss: int  # worker RSS, bytes
    hwm: int  # worker peak RSS, bytes
    busy: float  # the machine's busy CPU seconds since boot (all processes, not idle or iowait)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


class Sampler:
    """Every second: the simulator's call counters, CPU of the processes, the worker's RSS."""

    def __init__(self, http: httpx.AsyncClient, sim_url: str, pids: dict[str, int], worker_pid: int) -> None:
        self.http = http
        self.sim_url = sim_url
        self.pids = pids
        self.worker_pid = worker_pid
        self.samples: list[Sample] = []
        self._task: asyncio.Task[None] | None = None

    async def take(self) -> Sample:
        answer = await self.http.get(f"{self.sim_url}/sim/stats")
        answer.raise_for_status()
        rss, hwm = process_memory(self.worker_pid)
        machine = machine_cpu_fields()
        sample = Sample(
            t=time.monotonic(),
            wall=time.time(),
            calls=dict(answer.json()["calls"]),
            cpu={name: process_cpu(pid) for name, pid in self.pids.items()},
            rss=rss,
            hwm=hwm,
            busy=sum(machine) - machine[3] - machine[4],
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            await self.take()
            await asyncio.sleep(1.0)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]

    def last(self) -> Sample:
        return self.samples[-1]


def cpu_rate(a: Sample, b: Sample, name: str) -> float:
    """Cores used by one process between two samples."""
    return (b.cpu[name] - a.cpu[name]) / max(b.t - a.t, 1e-6)


# --- set-up ---------------------------------------------------------------------------------------------

SOURCE_DIRS = ("activities", "core", "domain", "integrations", "models", "rules", "services", "workflows")


def source_digest() -> str:
    """A hash of the code the worker runs. The Python SDK's sandbox re-reads a workflow's module from disk for
    every new run, so an edit during a long bench would change the code mid-run: the digest is compared at the
    end. (To measure one commit while the tree is being edited, run the bench from a `git archive` of it.)"""
    digest = hashlib.sha256()
    files = [PROJECT_ROOT / "worker.py", *(f for d in SOURCE_DIRS for f in (PROJECT_ROOT / d).rglob("*.py"))]
    for path in sorted(files):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        with contextlib.suppress(OSError):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_facts() -> dict[str, str]:
    def git(*argv: str) -> str:
        try:
            done = subprocess.run(["git", "-C", str(PROJECT_ROOT), *argv], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return "?"
        return done.stdout.strip() if done.returncode == 0 else "?"

    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_files": str(len(status.splitlines()))
            if status != "?" else "?"}  # fmt: skip


async def register_parcels(http: httpx.AsyncClient, settings: Settings, numbers: list[str]) -> list[TrackingSnapshot]:
    """Register the numbers with the simulator's 17TRACK routes and read their first answer (2 × N/40 calls,
    before anything is measured). Every parcel must show INFO_RECEIVED with one event."""
    client = track17.Track17Client(http, carrier_base_url(CARRIER, settings), key=settings.carrier_17track_key)
    refused = await client.register(numbers)
    if refused:
        raise RuntimeError(f"the simulator refused {len(refused)} numbers, e.g. {refused[0]}")
    batch = await client.track_batch(numbers)
    if batch.unknown:
        raise RuntimeError(f"the simulator does not know {len(batch.unknown)} numbers, e.g. {batch.unknown[0]}")
    odd = [s for s in batch.snapshots if s.status is not TrackingStatus.INFO_RECEIVED or len(s.events) != 1]
    if odd:
        raise RuntimeError(f"{len(odd)} parcels do not stand still at INFO_RECEIVED/1 event, e.g. {odd[0]}")
    return batch.snapshots


def prepare_database(db_path: Path, snapshots: list[TrackingSnapshot]) -> None:
    """The schema, one open shipment per parcel and the one event the carrier has shown for it."""
    engine = make_engine(f"sqlite:///{db_path}")
    try:
        upgrade(engine)
        now = datetime.now(UTC)
        with unit_of_work(engine) as session:
            for i, snapshot in enumerate(snapshots):
                session.add(
                    Shipment(
                        order_no=f"BENCH-{i:06d}",
                        warehouse="WH-SH",
                        carrier=CARRIER,
                        tracking_no=snapshot.tracking_no,
                        status=TrackingStatus.INFO_RECEIVED.value,
                        dispatched_at=now,
                    )
                )
                for event in snapshot.events:
                    session.add(
                        TrackingEvent(
                            carrier=CARRIER,
                            tracking_no=snapshot.tracking_no,
                            status=event.status,
                            at=event.at,
                            location=event.location[:200],
                            description=event.description[:500],
                        )
                    )
    finally:
        engine.dispose()


async def start_trackings(
    client: Client,
    task_queue: str,
    numbers: list[str],
    *,
    batched: bool,
    interval: timedelta,
    parent_id: str,
    concurrency: int,
    log: Callable[[str], None],
) -> float:
    """Start one ShipmentTracking per parcel, at most `concurrency` start calls in flight; returns the wall time."""
    gate = asyncio.Semaphore(concurrency)
    started = 0
    t0 = time.monotonic()
    step = max(1, len(numbers) // 5)

    async def one(i: int, number: str) -> None:
        nonlocal started
        async with gate:
            await client.start_workflow(
                ShipmentTracking.run,
                TrackingInput(
                    order_no=f"BENCH-{i:06d}",
                    # Never signalled: no parcel ever has news, and the stall window (3 days) never closes.
                    parent_workflow_id=parent_id,
                    carrier=CARRIER,
                    tracking_no=number,
                    poll_interval=interval,
                    known_status=TrackingStatus.INFO_RECEIVED,
                    known_events=1,
                    batched=batched,
                ),
                id=tracking_workflow_id(CARRIER, number),
                task_queue=task_queue,
            )
            started += 1
            if started % step == 0:
                log(f"  {started} started ({started / (time.monotonic() - t0):.0f}/s)")

    await asyncio.gather(*(one(i, n) for i, n in enumerate(numbers)))
    return time.monotonic() - t0


async def settle(
    sampler: Sampler, since: Sample, need_calls: int, max_wait: float, log: Callable[[str], None]
) -> tuple[bool, str]:
    """Wait until the carrier has answered `need_calls` calls since `since` (the first round), then until the
    worker and the dev server stay under 0.1 core each for 5 s. Returns (settled, what happened)."""
    deadline = time.monotonic() + max_wait
    while sampler.last().total_calls - since.total_calls < need_calls:
        if time.monotonic() > deadline:
            got = sampler.last().total_calls - since.total_calls
            return False, f"first round incomplete: {got} of {need_calls} carrier calls after {max_wait:.0f}s"
        await asyncio.sleep(1.0)
    log(f"  first round done ({sampler.last().total_calls - since.total_calls} carrier calls); waiting for quiet")
    while True:
        await asyncio.sleep(1.0)
        recent = sampler.samples[-6:]
        if len(recent) == 6 and all(cpu_rate(recent[0], recent[-1], name) < 0.1 for name in ("worker", "temporal")):
            return True, "quiet"
        if time.monotonic() > deadline:
            return False, f"worker/server not quiet after {max_wait:.0f}s (measured anyway)"


# --- histories --------------------------------------------------------------------------------------------


def event_time(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


async def tracking_histories(client: Client, numbers: list[str], sample: int, batched: bool) -> dict[str, Any]:
    """Events per run of a spread sample of ShipmentTracking workflows (each has one run here), and for
    per-parcel polling the attempt number of the pending poll (how many polls the server has made)."""
    step = max(1, len(numbers) // sample)
    picked = numbers[::step][:sample]
    counts: list[int] = []
    attempts: list[int] = []
    for number in picked:
        handle = client.get_workflow_handle(tracking_workflow_id(CARRIER, number))
        history = await handle.fetch_history()
        counts.append(len(history.events))
        if not batched:
            pending = (await handle.describe()).raw_description.pending_activities
            attempts.extend(p.attempt for p in pending)
    out: dict[str, Any] = {
        "sampled": len(picked),
        "events_per_run_median": statistics.median(counts),
        "events_per_run_max": max(counts),
        "events_per_run_min": min(counts),
    }
    if attempts:
        out["pending_poll_attempt_median"] = statistics.median(attempts)
    return out


async def poller_histories(client: Client, poller_id: str) -> tuple[dict[str, Any], list[tuple[float, SweepOutcome]]]:
    """Every run of the CarrierPoller, newest back to the first (continue-as-new), with events, parcel_opened
    signals and sweeps per run; and every sweep's (completion time, outcome)."""
    runs: list[dict[str, Any]] = []
    sweeps: list[tuple[float, SweepOutcome]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(poller_id, run_id=run_id).fetch_history()
        events = history.events
        scheduled: dict[int, str] = {}
        signals = sweeps_here = 0
        for e in events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signals += 1
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attrs = e.activity_task_completed_event_attributes
                if scheduled.get(attrs.scheduled_event_id) == "sweep_carrier":
                    sweeps_here += 1
                    [outcome] = await client.data_converter.decode(attrs.result.payloads, [SweepOutcome])
                    sweeps.append((event_time(e), outcome))
        runs.append(
            {
                "events": len(events),
                "parcel_opened_signals": signals,
                "sweeps": sweeps_here,
                "ended": ENDINGS.get(events[-1].event_type, "still running") if events else "",
                "seconds": round(event_time(events[-1]) - event_time(events[0]), 1) if events else 0.0,
            }
        )
        previous = events[0].workflow_execution_started_event_attributes.continued_execution_run_id
        if not previous:
            break
        run_id = previous
    runs.reverse()
    sizes = [r["events"] for r in runs]
    summary = {
        "runs": len(runs),
        "events_per_run_median": statistics.median(sizes),
        "events_per_run_max": max(sizes),
        "per_run": runs,
    }
    return summary, sorted(sweeps, key=lambda s: s[0])


# --- one run ----------------------------------------------------------------------------------------------


@dataclass
class Shared:
    args: argparse.Namespace
    tmp: Path
    run_id: str
    numbers: list[str]
    db_path: Path
    sim_url: str
    simulator: subprocess.Popen[bytes]
    http: httpx.AsyncClient
    log: Callable[[str], None]
    notes: list[str] = field(default_factory=list)


async def run_mode(shared: Shared, mode: str) -> dict[str, Any]:
    args, log = shared.args, shared.log
    batched = mode == "batched"
    interval = float(args.interval)
    state = shared.tmp / mode
    await asyncio.to_thread(state.mkdir)
    settings = Settings(
        _env_file=None,
        state_dir=state,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        task_queue=f"bench-track-{mode}-{shared.run_id}",
    )
    settings = with_local_secrets(
        settings.model_copy(update={"temporal_address": f"{LOOPBACK}:{settings.temporal_port}"})
    )
    temporal_log = state / "temporal.log"
    argv = [*temporal_argv(temporal_binary(), settings), "--headless"]
    for value in args.dynamic_config:  # experiments only (e.g. a lower signal limit); none by default
        argv += ["--dynamic-config-value", value]
    temporal = spawn(argv, dict(os.environ), temporal_log)
    worker: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(wait_tcp, settings.temporal_port, temporal, temporal_log)
        client = await connect_when_ready(settings)
        worker_log = state / "worker.log"
        worker = spawn(
            [sys.executable, str(PROJECT_ROOT / "worker.py")],
            _worker_env(settings, shared.db_path, shared.sim_url, settings.task_queue),
            worker_log,
        )
        await wait_pollers(client, settings.task_queue, worker, worker_log)
        log(f"{mode}: dev server {settings.temporal_address}, worker pid {worker.pid} on {settings.task_queue}")
        pids = {
            "worker": worker.pid,
            "temporal": temporal.pid,
            "simulator": shared.simulator.pid,
            "driver": os.getpid(),
        }
        with Sampler(shared.http, shared.sim_url, pids, worker.pid) as sampler:
            await asyncio.sleep(2.0)  # the worker's idle RSS
            before = await sampler.take()
            log(f"{mode}: starting {len(shared.numbers)} ShipmentTracking workflows ...")
            start_s = await start_trackings(
                client,
                settings.task_queue,
                shared.numbers,
                batched=batched,
                interval=timedelta(seconds=interval),
                parent_id=f"bench-parent-{shared.run_id}",
                concurrency=args.concurrency,
                log=log,
            )
            log(f"{mode}: {len(shared.numbers)} started in {start_s:.1f} s")
            # First round: every parcel polled once (1 call each: the numbers are registered), or the poller's
            # first sweep (1 call per 40 numbers).
            need = len(shared.numbers) if not batched else math.ceil(len(shared.numbers) / track17.BATCH_LIMIT)
            settled, how = await settle(sampler, before, need, args.settle_max, log)
            if not settled:
                shared.notes.append(f"{mode}: {how}")
            first_round = await sampler.take()
            if not batched:
                # The second round repeats the first one's spread one interval later: start the window halfway
                # through the quiet gap between them, so that neither end of it cuts through a round.
                first_call = next(
                    x.t for x in sampler.samples if x.t >= before.t and x.total_calls > before.total_calls
                )
                gap = (first_round.t, first_call + interval)
                if gap[1] <= gap[0]:
                    shared.notes.append(f"{mode}: the first round took longer than an interval; no quiet gap")
                await asyncio.sleep(max(0.0, (gap[0] + gap[1]) / 2 - time.monotonic()))
            if batched:  # it must hold a sweep; sweeps are counted from the poller's history
                window = args.window or interval + 60.0
            else:  # whole intervals: the polls come in the bunches the starts made, once per interval each
                window = interval * max(1, round((args.window or interval) / interval))
            log(
                f"{mode}: settled {first_round.t - before.t:.0f} s after the first start ({how}); window {window:.0f} s"
            )
            w0 = await sampler.take()
            await asyncio.sleep(window)
            w1 = await sampler.take()
            # A sweep still going at the end of the window: let it finish (its calls belong to it). Not for
            # per-parcel polling: its window is exactly one interval, in which every parcel is polled once.
            extra_deadline = time.monotonic() + 120
            while batched and time.monotonic() < extra_deadline:
                await asyncio.sleep(3.0)
                w2 = await sampler.take()
                if w2.total_calls == w1.total_calls:
                    break
                w1 = w2
            in_window = sampler.between(w0.t, w1.t)
        # Histories: the sample of tracking workflows, the poller's runs.
        histories = await tracking_histories(client, shared.numbers, args.sample, batched)
        poller: dict[str, Any] | None = None
        sweeps_in_window: list[SweepOutcome] = []
        if batched:
            poller, sweeps = await poller_histories(client, poller_workflow_id(CARRIER, settings.task_queue))
            sweeps_in_window = [o for at, o in sweeps if w0.wall <= at <= w1.wall]
            poller["sweeps"] = [
                {"at_s": round(at - before.wall, 1), **o.model_dump(exclude_none=True)} for at, o in sweeps
            ]
        running = (
            await client.count_workflows(f"WorkflowType = 'ShipmentTracking' AND TaskQueue = '{settings.task_queue}' "
                                         "AND ExecutionStatus = 'Running'")
        ).count  # fmt: skip
        if running != len(shared.numbers):
            shared.notes.append(f"{mode}: {running} of {len(shared.numbers)} ShipmentTracking workflows running")
    finally:
        if worker is not None:
            await asyncio.to_thread(stop, worker)
        await asyncio.to_thread(stop, temporal)  # throw-away server: its workflows end with it

    seconds = w1.t - w0.t
    calls = {route: n - w0.calls.get(route, 0) for route, n in w1.calls.items() if n - w0.calls.get(route, 0)}
    total = sum(calls.values())
    cpu = {name: round(w1.cpu[name] - w0.cpu[name], 2) for name in pids}
    # Processes outside the bench (e.g. someone's test run on the same cores) during the window.
    cpu["others"] = round(max(0.0, w1.busy - w0.busy - sum(cpu.values())), 2)
    if cpu["others"] / seconds > 0.05 * (os.cpu_count() or 1):
        shared.notes.append(f"{mode}: processes outside the bench took {cpu['others']} CPU-s during the window")
    if batched:
        per_interval = total / len(sweeps_in_window) if sweeps_in_window else float("nan")
        if not sweeps_in_window:
            shared.notes.append(f"{mode}: no sweep completed inside the window")
    else:
        per_interval = total / round(seconds / interval)
    result: dict[str, Any] = {
        "mode": mode,
        "task_queue": settings.task_queue,
        "start_s": round(start_s, 1),
        "starts_per_s": round(len(shared.numbers) / start_s, 1),
        "settled_after_s": round(first_round.t - before.t, 1),
        "settled": how,
        "first_round_calls": first_round.total_calls - before.total_calls,
        "first_round_cpu_s": {name: round(first_round.cpu[name] - before.cpu[name], 2) for name in pids},
        "window_s": round(seconds, 1),
        "calls_in_window": total,
        "calls_by_route": calls,
        "calls_per_s": round(total / seconds, 3),
        "calls_per_interval": round(per_interval, 1),
        "calls_per_hour_at_1h": round(per_interval * 3600.0 / PRODUCTION_INTERVAL_S, 1),
        "sweeps_in_window": [o.model_dump(exclude_none=True) for o in sweeps_in_window] if batched else None,
        "cpu_s_in_window": cpu,
        "cpu_cores_in_window": {name: round(v / seconds, 3) for name, v in cpu.items()},
        # Per call only for per-parcel polling, where the calls are the work; a sweep's few calls ride on idle time.
        "cpu_ms_per_call": {name: round(1000 * cpu[name] / total, 2) for name in ("worker", "temporal", "simulator")}
        if total and not batched
        else {},
        "worker_rss_mib": {
            "idle_before_starts": round(before.rss / MiB, 1),
            "max_in_window": round(max(s.rss for s in in_window) / MiB, 1),
            "peak_since_start": round(max(s.hwm for s in in_window) / MiB, 1),
        },
        "tracking_history": histories,
        "poller_history": poller,
    }
    log(
        f"{mode}: {total} carrier calls in {seconds:.0f} s ({total / seconds:.2f}/s), "
        f"{per_interval:.0f} per interval; worker {cpu['worker']} CPU-s, server {cpu['temporal']} CPU-s"
    )
    return result


# --- the bench ----------------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    numbers = [f"BT{run_id}{i:06d}" for i in range(args.parcels)]
    sim_port = free_port()
    sim_url = f"http://{LOOPBACK}:{sim_port}"
    sim_log = tmp / "simulator.log"
    simulator = spawn(
        [
            sys.executable,
            "-m",
            "dev.simulator.carriers",
            "--host",
            LOOPBACK,
            "--port",
            str(sim_port),
            "--advance",
            "time",
            "--step-seconds",
            str(SIM_STEP_SECONDS),
            "--log-level",
            "warning",
        ],
        dict(os.environ),
        sim_log,
    )
    await asyncio.to_thread(wait_tcp, sim_port, simulator, sim_log)
    settings = Settings(_env_file=None, carrier_sim_url=sim_url)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.tracking", *sys.argv[1:]]),
        "parcels": args.parcels,
        "carrier": CARRIER,
        "interval_s": args.interval,
        "concurrency": args.concurrency,
        "machine": machine_facts(),
    }
    result["source"] = {**await asyncio.to_thread(git_facts), "digest": await asyncio.to_thread(source_digest)}
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
        snapshots = await register_parcels(http, settings, numbers)
        db_path = tmp / "orderflow.db"
        await asyncio.to_thread(prepare_database, db_path, snapshots)
        log(f"{args.parcels} parcels registered with the simulator and recorded in {time.monotonic() - t0:.1f} s")
        shared = Shared(args, tmp, run_id, numbers, db_path, sim_url, simulator, http, log)
        modes = [m for m in MODES if m in args.modes]
        result["runs"] = {mode: await run_mode(shared, mode) for mode in modes}
    await asyncio.to_thread(stop, simulator)
    result["notes"] = shared.notes
    if await asyncio.to_thread(source_digest) != result["source"]["digest"]:
        result["notes"].append("the worker's source files changed during the run: the figures may mix two versions")
    runs = result["runs"]
    if len(runs) == 2:
        a, b = runs["per-parcel"]["calls_per_interval"], runs["batched"]["calls_per_interval"]
        result["ratio_batched_to_per_parcel"] = round(b / a, 4) if a else None
    result["wall_s"] = round(time.monotonic() - t0, 1)
    return result


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"orderflow tracking bench {result['date']}: {result['parcels']} parcels of {result['carrier']}, "
        f"poll/sweep interval {result['interval_s']:.0f} s (production: {PRODUCTION_INTERVAL_S:.0f} s), "
        f"{result['concurrency']} starts in flight",
        f"machine: {m['nproc']} cores, {m['mem_gib']} GiB, Python {m['python']}, {m['temporal']}",
        f"source: commit {result['source']['commit']}, {result['source']['uncommitted_files']} files uncommitted, "
        f"digest {result['source']['digest']}",
        "",
    ]
    runs = result["runs"]
    names = list(runs)

    def row(label: str, value: Callable[[dict[str, Any]], object]) -> None:
        out.append(f"{label:<46}" + "".join(f"{str(value(runs[n])):>20}" for n in names))

    out.append(f"{'':<46}" + "".join(f"{n:>20}" for n in names))
    row("start N workflows (s)", lambda r: f"{r['start_s']} ({r['starts_per_s']}/s)")
    row("first round settled after (s)", lambda r: r["settled_after_s"])
    row("window (s)", lambda r: r["window_s"])
    row("carrier HTTP calls in window", lambda r: r["calls_in_window"])
    row("  calls/s (measured)", lambda r: r["calls_per_s"])
    row("  calls per interval", lambda r: r["calls_per_interval"])
    row("  calls per hour at the 1 h interval", lambda r: r["calls_per_hour_at_1h"])
    row(
        "worker CPU-s in window (cores)",
        lambda r: f"{r['cpu_s_in_window']['worker']} ({r['cpu_cores_in_window']['worker']})",
    )
    row(
        "dev server CPU-s in window (cores)",
        lambda r: f"{r['cpu_s_in_window']['temporal']} ({r['cpu_cores_in_window']['temporal']})",
    )
    row("simulator CPU-s in window", lambda r: r["cpu_s_in_window"]["simulator"])
    row("others' CPU-s in window (not the bench)", lambda r: r["cpu_s_in_window"]["others"])
    row("CPU-ms per carrier call: worker", lambda r: r["cpu_ms_per_call"].get("worker", "-"))
    row("CPU-ms per carrier call: dev server", lambda r: r["cpu_ms_per_call"].get("temporal", "-"))
    row("worker RSS MiB: idle before starts", lambda r: r["worker_rss_mib"]["idle_before_starts"])
    row("worker RSS MiB: max in window", lambda r: r["worker_rss_mib"]["max_in_window"])
    row("worker RSS MiB: peak since start (VmHWM)", lambda r: r["worker_rss_mib"]["peak_since_start"])
    row("first round: carrier calls", lambda r: r["first_round_calls"])
    row(
        "first round: worker / server CPU-s",
        lambda r: f"{r['first_round_cpu_s']['worker']} / {r['first_round_cpu_s']['temporal']}",
    )
    row(
        "ShipmentTracking events/run: median / max",
        lambda r: f"{r['tracking_history']['events_per_run_median']} / {r['tracking_history']['events_per_run_max']}",
    )
    row("CarrierPoller runs; events/run median / max", lambda r: (
        f"{r['poller_history']['runs']}; {r['poller_history']['events_per_run_median']} / "
        f"{r['poller_history']['events_per_run_max']}" if r["poller_history"] else "-"))  # fmt: skip
    for name in names:
        r = runs[name]
        if r["poller_history"]:
            out.append("")
            out.append(f"{name}: CarrierPoller runs, first to last:")
            for i, run in enumerate(r["poller_history"]["per_run"]):
                out.append(
                    f"  run {i + 1}: {run['events']} events, {run['parcel_opened_signals']} signals, "
                    f"{run['sweeps']} sweeps, {run['ended']} after {run['seconds']} s"
                )
            for sweep in r["poller_history"]["sweeps"]:
                out.append(f"  sweep done at +{sweep['at_s']} s: {sweep}")
        if r["tracking_history"].get("pending_poll_attempt_median") is not None:
            out.append(
                f"{name}: pending poll attempt (median over the sample): "
                f"{r['tracking_history']['pending_poll_attempt_median']}"
            )
    if "ratio_batched_to_per_parcel" in result:
        b, a = runs["batched"]["calls_per_interval"], runs["per-parcel"]["calls_per_interval"]
        out += [
            "",
            f"batched/per-parcel HTTP calls per interval: {b:.0f} / {a:.0f} = {result['ratio_batched_to_per_parcel']}",
        ]
    for note in result["notes"]:
        out.append(f"note: {note}")
    out.append(f"whole bench: {result['wall_s']} s")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__.split("\n")[0])
    parser.add_argument("--parcels", type=int, default=10_000, help="parcels in flight (workflows per run)")
    parser.add_argument(
        "--interval", type=float, default=600.0, help="poll / sweep interval, seconds (production: 3600)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="measured seconds per run (default: per-parcel one interval, rounded to whole intervals; batched "
        "interval + 60)",
    )
    parser.add_argument("--concurrency", type=int, default=200, help="workflow starts in flight at most")
    parser.add_argument("--sample", type=int, default=50, help="ShipmentTracking histories read per run")
    parser.add_argument(
        "--settle-max", type=float, default=900.0, help="seconds to wait for the first round and quiet per run"
    )
    parser.add_argument("--modes", default="per-parcel,batched", help="which runs, comma-separated")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for the whole bench (default: estimated)")
    parser.add_argument(
        "--dynamic-config",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="passed to the dev servers as --dynamic-config-value (experiments; repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (databases, logs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.parcels < 1 or args.concurrency < 1 or args.interval <= 0 or not set(args.modes) <= set(MODES):
        parser.error(f"--parcels, --concurrency, --interval must be positive; --modes among {', '.join(MODES)}")
    if args.timeout is None:
        windows = (args.window or args.interval) * 2 + 60
        args.timeout = windows + 0.1 * args.parcels + 600
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), bench, render, name="bench.tracking")


if __name__ == "__main__":
    sys.exit(main())
