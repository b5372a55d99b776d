"""Parcel tracking end to end on the time-skipping server: batch sweeps, carrier pushes (signed webhooks), the
simulator's journeys and faults, and history size over long journeys."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from core.config import Settings
from entrypoints.api.app import create_app
from integrations.carriers.sim import to_snapshot
from models.contracts import PollerInput
from models.status import OrderStatus, TrackingStatus
from models.tables import Notification, Shipment, TrackingEvent
from services import order_commands
from services.queries.order_view import order_view
from tests.conftest import make_settings
from tests.support.automations import worker_and_default_rules
from tests.support.cleanup import StartedOrders
from tests.support.orders import make_order
from tests.support.pushes import parcel_view, signed_push
from tests.support.simulator import running_simulator
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import Signal, poller_workflow_id, tracking_workflow_id

MAX_EVENTS_PER_RUN = 1000


async def sim(http: httpx.AsyncClient, simulator_url: str, path: str, body: dict[str, Any]) -> None:
    answer = await http.post(f"{simulator_url}{path}", json=body)
    assert answer.status_code in (200, 201), answer.text


async def carrier_calls(simulator_url: str) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=5) as http:
        calls: dict[str, int] = (await http.get(f"{simulator_url}/sim/stats")).json()["calls"]
    return calls


async def run_histories(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow, oldest first (following continue-as-new back from the latest run)."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        histories.insert(0, history)
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return histories


def activity_types(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def dispatch_when_picking(
    client: Client, orders: StartedOrders, task_queue: str, carrier: str, tracking_no: str, prefix: str
) -> Any:
    order = make_order(f"{prefix}-{uuid.uuid4().hex[:6]}")
    handle = await orders.start(order, task_queue)
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier=carrier, tracking_no=tracking_no)
    return handle


@pytest.mark.parametrize("interval", [timedelta(minutes=30), timedelta(seconds=2)], ids=["30min", "2s"])
async def test_batch_carrier_parcels_are_swept_together_not_one_call_each(
    interval: timedelta,
    time_env: WorkflowEnvironment,
    client: Client,
    engine: Engine,
    simulator_url: str,
    tmp_path: Path,
    task_queue: str,
    orders: StartedOrders,
) -> None:
    """Five 17TRACK parcels: one CarrierPoller asks about all of them per sweep; no parcel polls by itself.
    Also at the embedded stack's 2-second interval (shorter than the sweep's own retry interval)."""
    settings = make_settings(tmp_path, simulator_url, tracking_poll_interval=interval)
    numbers = [f"B17{uuid.uuid4().hex[:10].upper()}" for _ in range(5)]
    before = await carrier_calls(simulator_url)
    async with running_worker(client, engine, settings, task_queue):
        handles = [await dispatch_when_picking(client, orders, task_queue, "17track", no, "T-BATCH") for no in numbers]
        results = [await h.result() for h in handles]  # one at a time: each result() unlocks time skipping
        # Nothing is open now: at its next sweep the poller ends by itself (while its worker still runs — a
        # poller cut off by the teardown with a workflow task pending would lock time skipping for good).
        await time_env.sleep(interval)
        assert await client.get_workflow_handle(poller_workflow_id("17track", task_queue)).result() > 1
    assert [r.status for r in results] == [OrderStatus.COMPLETED] * 5
    after = await carrier_calls(simulator_url)
    queries = after.get("POST /track17/track/v2.2/gettrackinfo", 0) - before.get(
        "POST /track17/track/v2.2/gettrackinfo", 0
    )
    # Five parcels x five steps would be >= 25 calls polled one by one; a sweep asks about all open ones.
    assert 0 < queries < 15, queries
    for number in numbers:
        [history] = await run_histories(client, tracking_workflow_id("17track", number))
        assert "poll_parcel" not in activity_types(history)
        assert activity_types(history) == ["ensure_carrier_poller"]
    poller = client.get_workflow_handle(poller_workflow_id("17track", task_queue))
    assert {"sweep_carrier"} == set(activity_types(await poller.fetch_history()))
    with Session(engine) as session:
        delivered = session.exec(
            select(TrackingEvent).where(
                TrackingEvent.carrier == "17track", TrackingEvent.status == TrackingStatus.DELIVERED
            )
        ).all()
    assert sorted(e.tracking_no for e in delivered) == sorted(numbers)


@pytest.fixture
def push_settings(tmp_path: Path, simulator_url: str) -> Settings:
    # A day between polls: during the test only the pushes can move the parcel (nothing skips time here).
    return make_settings(tmp_path, simulator_url, tracking_poll_interval=timedelta(days=1))


@pytest.fixture
async def api(engine: Engine, client: Client, push_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(push_settings, engine=engine, client=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http


def events_of(engine: Engine, carrier: str, tracking_no: str) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(
            select(TrackingEvent).where(TrackingEvent.carrier == carrier, TrackingEvent.tracking_no == tracking_no)
        ).all()
    return sorted(r.status for r in rows)


@pytest.mark.parametrize("carrier", ["kuaidi100", "17track", "aftership"])
async def test_a_signed_push_delivers_the_order_and_a_forged_one_changes_nothing(
    carrier: str,
    client: Client,
    engine: Engine,
    push_settings: Settings,
    api: httpx.AsyncClient,
    simulator_url: str,
    task_queue: str,
    orders: StartedOrders,
) -> None:
    tracking_no = f"PUSH{uuid.uuid4().hex[:10].upper()}"
    delivered = parcel_view(tracking_no, TrackingStatus.DELIVERED)
    async with httpx.AsyncClient(timeout=5) as http:  # polled, the parcel never gets past INFO_RECEIVED
        quiet = {"tracking_no": tracking_no, "steps": [{"status": "INFO_RECEIVED", "hold": None}]}
        await sim(http, simulator_url, "/sim/journeys", quiet)
    async with running_worker(client, engine, push_settings, task_queue):
        handle = await dispatch_when_picking(client, orders, task_queue, carrier, tracking_no, f"T-PUSH-{carrier}")
        await wait_for_status(handle, OrderStatus.DISPATCHED, OrderStatus.IN_TRANSIT)
        deadline = time.monotonic() + 20
        while not (known_events := events_of(engine, carrier, tracking_no)):  # the first poll/sweep's answer
            assert time.monotonic() < deadline, "the carrier was never asked"
            await asyncio.sleep(0.05)

        body, headers = signed_push(carrier, delivered, push_settings, forge=True)
        refused = await api.post(f"/webhooks/carriers/{carrier}", content=body, headers=headers)
        assert refused.status_code == 401, refused.text
        unsigned = {k: v for k, v in headers.items() if k == "content-type"}
        if carrier != "kuaidi100":  # kuaidi100's signature is inside the form body
            assert (await api.post(f"/webhooks/carriers/{carrier}", content=body, headers=unsigned)).status_code == 401
        # A genuine push sent after the forged ones is a barrier: news reaches the tracking in the order it came,
        # so once this one is recorded, anything the forged pushes had set off would have been recorded too.
        body, headers = signed_push(carrier, parcel_view(tracking_no, TrackingStatus.IN_TRANSIT), push_settings)
        assert (await api.post(f"/webhooks/carriers/{carrier}", content=body, headers=headers)).status_code == 200
        deadline = time.monotonic() + 20
        while "IN_TRANSIT" not in (seen := events_of(engine, carrier, tracking_no)):
            assert time.monotonic() < deadline, f"the genuine push was never recorded: {seen}"
            await asyncio.sleep(0.05)
        assert "DELIVERED" not in seen and set(known_events) <= set(seen)  # the forged news recorded nothing
        state = await wait_for_status(handle, OrderStatus.IN_TRANSIT)
        assert state.shipments[0].status == TrackingStatus.IN_TRANSIT

        body, headers = signed_push(carrier, delivered, push_settings)
        accepted = await api.post(f"/webhooks/carriers/{carrier}", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        again = await api.post(f"/webhooks/carriers/{carrier}", content=body, headers=headers)  # carriers re-send
        assert again.status_code == 200
        await wait_for_status(handle, OrderStatus.COMPLETED)
        await handle.result()  # finished here: cut off mid-step by the teardown, it would lock time skipping
    with Session(engine) as session:
        [shipment] = order_view(session, handle.id.removeprefix("order-"))["shipments"]
    assert shipment["status"] == "DELIVERED" and shipment["signed_by"] == delivered.signed_by
    assert events_of(engine, carrier, tracking_no).count("DELIVERED") == 1  # the repeat added nothing


async def test_webhook_refuses_unknown_carriers_and_malformed_pushes(api: httpx.AsyncClient) -> None:
    assert (await api.post("/webhooks/carriers/sim", content=b"{}")).status_code == 404
    assert (await api.post("/webhooks/carriers/nosuch", content=b"{}")).status_code == 404
    assert (await api.post("/webhooks/carriers/kuaidi100", content=b"no=form")).status_code == 422


async def test_a_push_for_a_parcel_we_do_not_ship_is_acknowledged_and_ignored(
    engine: Engine, push_settings: Settings, api: httpx.AsyncClient
) -> None:
    body, headers = signed_push("aftership", parcel_view("NOTOURS1", TrackingStatus.IN_TRANSIT), push_settings)
    assert (await api.post("/webhooks/carriers/aftership", content=body, headers=headers)).status_code == 200
    assert events_of(engine, "aftership", "NOTOURS1") == []


JOURNEY_OUTCOMES = {
    "happy": OrderStatus.COMPLETED,
    "backwards": OrderStatus.COMPLETED,
    "stall": OrderStatus.COMPLETED,
    "delivery_failure": OrderStatus.COMPLETED,
    "refusal": OrderStatus.FAILED,
    "return": OrderStatus.FAILED,
}
FAULTS = {
    "server_error": {"kind": "server_error", "times": 3},
    "rate_limit": {"kind": "rate_limit", "times": 2, "retry_after": 7200},
    "timeout": {"kind": "timeout", "times": 1, "delay_seconds": 0.3},
    "malformed": {"kind": "malformed", "times": 2},
    "unknown": {"kind": "unknown", "times": 3},
}


@pytest.mark.parametrize("carrier", ["sim", "17track"])
async def test_every_journey_and_fault_ends_delivered_or_flagged_with_no_failed_workflow(
    carrier: str,
    client: Client,
    engine: Engine,
    settings: Settings,
    simulator_url: str,
    task_queue: str,
    orders: StartedOrders,
) -> None:
    """Each simulator journey (backwards, stall, failed attempt, refusal, return) and each HTTP fault (5xx, 429 +
    Retry-After, timeout, malformed, unknown number): the order ends COMPLETED, or FAILED after a flagged
    DELIVERY_EXCEPTION with ops told when the parcel went back; no Temporal workflow fails."""
    cases: dict[str, tuple[str, OrderStatus]] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        for journey, outcome in JOURNEY_OUTCOMES.items():
            number = f"J{journey[:4].upper()}{uuid.uuid4().hex[:8].upper()}"
            body: dict[str, Any] = {"tracking_no": number, "journey": journey}
            if journey == "stall":
                body["hold"] = 200  # 200 polls 30 min apart: past the 3-day stall window
            await sim(http, simulator_url, "/sim/journeys", body)
            cases[journey] = (number, outcome)
        for name, fault in FAULTS.items():
            number = f"F{name[:4].upper()}{uuid.uuid4().hex[:8].upper()}"
            await sim(http, simulator_url, "/sim/faults", {"tracking_no": number, **fault})
            cases[name] = (number, OrderStatus.COMPLETED)
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handles = {
            name: await dispatch_when_picking(client, orders, task_queue, carrier, number, "T-JOURNEY")
            for name, (number, _) in cases.items()
        }
        results = {name: await handle.result() for name, handle in handles.items()}
    with Session(engine) as session:
        for name, (_, outcome) in cases.items():
            view = order_view(session, handles[name].id.removeprefix("order-"))
            assert results[name].status == outcome, (name, results[name], view["timeline"])
            timeline = [step["status"] for step in view["timeline"]]
            if name in ("stall", "delivery_failure", "refusal", "return"):
                assert "DELIVERY_EXCEPTION" in timeline, (name, timeline)  # flagged on the way
            if outcome == OrderStatus.FAILED:
                assert "RETURNED" in results[name].reasons[-1]
                alerts = session.exec(
                    select(Notification.kind).where(
                        Notification.order_no == view["order_no"], Notification.recipient == "olga"
                    )
                ).all()
                assert "delivery_exception" in alerts  # ops heard about it
            if name == "backwards":  # the stale scan is recorded but never moved the parcel back
                assert timeline.index("OUT_FOR_DELIVERY") > timeline.index("IN_TRANSIT")
                assert timeline.count("IN_TRANSIT") == 1
    for name, (number, _) in cases.items():
        for workflow_id in (handles[name].id, tracking_workflow_id(carrier, number)):
            assert (await client.get_workflow_handle(workflow_id).describe()).status == (
                WorkflowExecutionStatus.COMPLETED
            ), (name, workflow_id)


async def test_a_14_day_journey_with_a_stall_on_day_3_runs_in_seconds(
    time_env: WorkflowEnvironment,
    client: Client,
    engine: Engine,
    simulator_url: str,
    tmp_path: Path,
    task_queue: str,
    orders: StartedOrders,
) -> None:
    """Hourly polls; the parcel goes quiet on day 3 for four days (the order is flagged and ops told once),
    moves again and is signed for on day 14. One run of the tracking workflow stays under 1,000 events."""
    settings = make_settings(tmp_path, simulator_url, tracking_poll_interval=timedelta(hours=1))
    number = f"J14D{uuid.uuid4().hex[:8].upper()}"
    steps = [
        {"status": "INFO_RECEIVED", "hold": 24},
        {"status": "PICKED_UP", "hold": 24},
        {"status": "IN_TRANSIT", "hold": 24 + 96, "description": "Departed origin hub"},  # day 3: silent 4 days
        {"status": "IN_TRANSIT", "hold": 48, "description": "Arrived at destination hub"},
        {"status": "IN_TRANSIT", "hold": 24, "description": "Customs cleared"},
        {"status": "IN_TRANSIT", "hold": 48, "description": "Arrived at delivery station"},
        {"status": "OUT_FOR_DELIVERY", "hold": 48},
        {"status": "DELIVERED"},
    ]
    async with httpx.AsyncClient(timeout=5) as http:
        await sim(http, simulator_url, "/sim/journeys", {"tracking_no": number, "steps": steps})
    started = time.monotonic()
    async with worker_and_default_rules(client, engine, settings, task_queue):
        handle = await dispatch_when_picking(client, orders, task_queue, "sim", number, "T-14DAYS")
        result = await handle.result()
    wall = time.monotonic() - started
    assert result.status == OrderStatus.COMPLETED
    with Session(engine) as session:
        view = order_view(session, handle.id.removeprefix("order-"))
        alerts = session.exec(
            select(Notification.kind).where(Notification.order_no == view["order_no"], Notification.recipient == "olga")
        ).all()
    timeline = {step["status"]: step["at"] for step in view["timeline"]}
    journey = datetime.fromisoformat(timeline["DELIVERED"]) - datetime.fromisoformat(timeline["DISPATCHED"])
    assert timedelta(days=13) < journey < timedelta(days=15), journey
    assert list(alerts) == ["delivery_exception"]
    statuses = [step["status"] for step in view["timeline"]]
    assert statuses.index("IN_TRANSIT") < statuses.index("DELIVERY_EXCEPTION") < statuses.index("DELIVERED")
    histories = await run_histories(client, tracking_workflow_id("sim", number))
    assert all(len(h.events) < MAX_EVENTS_PER_RUN for h in histories), [len(h.events) for h in histories]
    assert wall < 120, wall


async def test_30_days_without_news_on_a_batch_carrier_expires_with_small_histories(
    client: Client, engine: Engine, simulator_url: str, tmp_path: Path, task_queue: str, orders: StartedOrders
) -> None:
    """17TRACK never hears of the parcel: the sweeps keep asking, the stall is flagged, and after 30 days the
    parcel EXPIRES and the order FAILS. Every run of the tracking and poller workflows stays small."""
    settings = make_settings(tmp_path, simulator_url, tracking_poll_interval=timedelta(hours=6))
    number = f"B17X{uuid.uuid4().hex[:8].upper()}"
    async with httpx.AsyncClient(timeout=5) as http:
        await sim(http, simulator_url, "/sim/faults", {"tracking_no": number, "kind": "unknown", "times": None})
    async with running_worker(client, engine, settings, task_queue):
        handle = await dispatch_when_picking(client, orders, task_queue, "17track", number, "T-EXP17")
        result = await handle.result()
    assert result.status == OrderStatus.FAILED and "EXPIRED" in result.reasons[-1]
    with Session(engine) as session:
        view = order_view(session, handle.id.removeprefix("order-"))
    timeline = [step["status"] for step in view["timeline"]]
    assert timeline[-2:] == ["DELIVERY_EXCEPTION", "FAILED"]  # the stall was flagged first
    assert view["shipments"][0]["status"] == "EXPIRED"  # so the sweeps stop asking about it
    tracking = await run_histories(client, tracking_workflow_id("17track", number))
    poller = await run_histories(client, poller_workflow_id("17track", task_queue))
    sizes = [len(h.events) for h in [*tracking, *poller]]
    assert all(size < MAX_EVENTS_PER_RUN for size in sizes), sizes
    assert len(poller) > 1  # 120 sweeps over 30 days: the poller continued as new rather than grow


@asynccontextmanager
async def served_api(settings: Settings, engine: Engine, client: Client) -> AsyncIterator[str]:
    """The real API on a loopback port, in this event loop (it shares the test's Temporal client)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings, engine=engine, client=client)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_kuaidi100_parcel_is_subscribed_and_followed_by_the_carriers_pushes(
    dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path, task_queue: str
) -> None:
    """With the API's public URL set, the tracking subscribes the parcel at Kuaidi100 with our webhook as the
    callback; the carrier (the simulator, moving a step every 0.3 s) pushes each change, signed with our salt,
    and the order completes on pushes alone (the next poll is a day away). On the real dev server: a push lands
    while the first poll is finishing, and the time-skipping server hangs on exactly that cancel (conftest)."""
    client = dev_env.client
    orders = StartedOrders(client)
    tracking_no = f"SUB{uuid.uuid4().hex[:10].upper()}"
    with running_simulator(step_seconds=0.3, advance="time") as carrier_url:
        settings = make_settings(tmp_path, carrier_url, tracking_poll_interval=timedelta(days=1))
        async with served_api(settings, engine, client) as api_url:
            settings = settings.model_copy(update={"public_api_url": api_url})
            async with running_worker(client, engine, settings, task_queue):
                handle = await dispatch_when_picking(client, orders, task_queue, "kuaidi100", tracking_no, "T-SUB")
                await wait_for_status(handle, OrderStatus.COMPLETED, timeout=30)
                await handle.result()
            async with httpx.AsyncClient(timeout=5) as http:
                stats = (await http.get(f"{carrier_url}/sim/stats")).json()
    [history] = await run_histories(client, tracking_workflow_id("kuaidi100", tracking_no))
    assert activity_types(history)[0] == "subscribe_parcel"
    # A poll's retry is a day away: only the pushes can have moved the parcel to DELIVERED within seconds.
    assert stats["pushes"].get("push 200", 0) >= 3, stats
    assert events_of(engine, "kuaidi100", tracking_no).count("DELIVERED") == 1


async def test_a_flood_of_new_parcels_rolls_the_poller_over_without_extra_sweeps(
    time_env: WorkflowEnvironment, client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    """Every new batched parcel signals the poller; many within one interval make it continue as new while it
    waits (so no run nears the server's 10,000-signal limit), and the new run keeps the pace: no extra sweep."""
    # Dispatched "now" on the server's clock (the session's time-skipping clock is far ahead of the wall clock
    # after the long journeys), as the workflow would have stamped it.
    now = await time_env.get_current_time()
    with Session(engine) as session:  # an open parcel, so the poller does not end for lack of work
        session.add(
            Shipment(order_no="T-FLOOD", warehouse="WH-SH", carrier="17track", tracking_no="FLOOD1", dispatched_at=now)
        )
        session.commit()
    poller_id = poller_workflow_id("17track", task_queue)
    async with running_worker(client, engine, settings, task_queue):
        handle = await client.start_workflow(
            "CarrierPoller",
            PollerInput(carrier="17track", interval=timedelta(hours=1), max_events_per_run=60),
            id=poller_id,
            task_queue=task_queue,
        )
        deadline = time.monotonic() + 20
        while "sweep_carrier" not in activity_types(await handle.fetch_history()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        latest = client.get_workflow_handle(poller_id)  # no run id: the signals follow it across continue-as-new
        for index in range(40):  # 40 parcels opened within the hour: ~80 history events
            for _ in range(50):
                try:
                    await latest.signal("parcel_opened", f"track-17track-FLOOD{index}")
                    break
                except RPCError as exc:  # the test server has a moment between a run's end and the next one
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    await asyncio.sleep(0.05)
        runs: list[WorkflowHistory] = []
        while len(runs) < 2 or runs[-1].events[-1].event_type != EventType.EVENT_TYPE_TIMER_STARTED:
            if time.monotonic() > deadline + 20:
                desc = await client.get_workflow_handle(poller_id).describe()
                raise AssertionError(
                    f"the poller never continued as new and slept again: {desc.status}, "
                    f"{[(len(r.events), [e.event_type for e in r.events[-5:]]) for r in runs]}"
                )
            await asyncio.sleep(0.1)
            runs = await run_histories(client, poller_id)
        # Asleep on its timer (no workflow task pending): safe to end without locking time skipping.
        await client.get_workflow_handle(poller_id).terminate(reason="test over")
    sweeps = sum(activity_types(run).count("sweep_carrier") for run in runs)
    assert sweeps == 1  # the new run waits out the first run's hour instead of sweeping again at once
    assert all(len(run.events) < 200 for run in runs)


async def test_a_tracking_cancelled_as_news_arrives_ends_cancelled(
    client: Client, engine: Engine, settings: Settings, simulator_url: str, task_queue: str, orders: StartedOrders
) -> None:
    """News, then a cancel, back to back: the tracking is busy with the news (cancelling its poll, telling its
    order) when the cancel lands. It must end cancelled, not shrug the cancel off and poll on."""
    order = make_order(f"T-TRACKCANCEL-{uuid.uuid4().hex[:6]}")
    tracking_no = f"SIMTC{uuid.uuid4().hex[:10].upper()}"
    fault = {"tracking_no": tracking_no, "kind": "unknown", "times": None}  # no news from the carrier itself
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.post(f"{simulator_url}/sim/faults", json=fault)).status_code in (200, 201, 204)
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(order, task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no)
        tracking = client.get_workflow_handle(tracking_workflow_id("sim", tracking_no))
        deadline = time.monotonic() + 10
        while not (await tracking.describe()).raw_description.pending_activities:  # polling the carrier
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        news = parcel_view(tracking_no, TrackingStatus.IN_TRANSIT)
        await tracking.signal(Signal.PARCEL_NEWS, to_snapshot(news))
        await tracking.cancel()
        deadline = time.monotonic() + 15
        while (status := (await tracking.describe()).status) == WorkflowExecutionStatus.RUNNING:
            assert time.monotonic() < deadline, "the tracking ignored its cancel and went on polling"
            await asyncio.sleep(0.1)
        assert status == WorkflowExecutionStatus.CANCELED
        result = await handle.result()  # the order hears its parcel's tracking ended: ops must look at it
    assert result.status == OrderStatus.FAILED and "EXCEPTION" in result.reasons[-1]
