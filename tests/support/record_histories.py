"""Record workflow histories for the replay test (`make histories`).

Runs representative orders on the time-skipping server with a real database and the carrier simulator,
then stores each workflow's history as JSON under tests/histories/. Existing files are kept: they are the
histories of workflows started by older code, which today's code must still replay (changes to running
workflows go behind workflow.patched). Add a scenario to record a new history; `--force` re-records all.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.db import make_engine
from core.migrate import upgrade
from dev.seed import seed
from dev.temporal_admin import register_search_attributes
from models.order import Order
from models.status import OrderStatus
from services import order_commands
from tests.conftest import binary, make_settings, session_data_converter
from tests.support.orders import make_order
from tests.support.simulator import running_simulator
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import order_workflow_id, poller_workflow_id

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
TASK_QUEUE = "record-histories"


DECISION_SECRET = "recording-only"  # signs the recorded decisions; replay never checks it


async def happy(client: Client, engine: Engine, order: Order) -> None:
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier="sim", tracking_no="REC0001")
    await handle.result()


async def finance_then_split(client: Client, engine: Engine, order: Order) -> None:
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
    await order_commands.decide(
        client, engine, order.order_no, user="fiona", decision="approve", comment="ok", secret=DECISION_SECRET
    )
    picking = await wait_for_status(handle, OrderStatus.PICKING)
    for index, warehouse in enumerate(picking.awaiting_dispatch):
        await order_commands.dispatch(
            client, order.order_no, warehouse=warehouse, carrier="sim", tracking_no=f"REC-{order.order_no}-{index}"
        )
    await handle.result()


async def cancelled(client: Client, engine: Engine, order: Order) -> None:
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.cancel(client, order.order_no, reason="customer changed their mind")
    await handle.result()


async def troubled_delivery(client: Client, engine: Engine, order: Order) -> None:
    """A failed delivery attempt, then delivered: the parcel-progress-in-order patch and trouble news."""
    await _journey(client, order, "sim", "RECTROUBLE1", "delivery_failure")


async def batched_17track(client: Client, engine: Engine, order: Order) -> None:
    """A 17TRACK parcel followed by the carrier's poller (batched mode) rather than its own polls."""
    await _journey(client, order, "17track", "REC17BATCH1", "happy")


async def _journey(client: Client, order: Order, carrier: str, tracking_no: str, journey: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.post(f"{SIM_URL[0]}/sim/journeys", json={"tracking_no": tracking_no, "journey": journey})
        answer.raise_for_status()
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier=carrier, tracking_no=tracking_no)
    await handle.result()


async def to_the_end(client: Client, engine: Engine, order: Order) -> None:
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await handle.result()  # rejected at validation, or cancelled at the approval deadline (time skips)


SCENARIOS: list[tuple[str, Order, Callable[[Client, Engine, Order], Awaitable[None]]]] = [
    ("completed", make_order("H-COMPLETED"), happy),
    ("finance_split", make_order("H-FINANCE-SPLIT", [("SKU-1016", 600, "39.00")]), finance_then_split),
    ("cancelled", make_order("H-CANCELLED"), cancelled),
    ("rejected", make_order("H-REJECTED", [("SKU-9999", 1, "10.00")]), to_the_end),
    ("approval_deadline", make_order("H-DEADLINE", [("SKU-1018", 1, "12999.00")]), to_the_end),
    # Recorded after the approval-escalation patch: the reminder is escalated to the finance director.
    ("approval_escalation", make_order("H-ESCALATION", [("SKU-1018", 1, "12999.00")]), to_the_end),
    # Recorded after issue 4's tracking work: trouble handled in order, batched 17TRACK tracking + its poller.
    ("troubled_delivery", make_order("H-TROUBLE"), troubled_delivery),
    ("batched_17track", make_order("H-BATCHED"), batched_17track),
    # Recorded after the front door: payloads encrypted by the PII codec, the decision signed by the API's secret.
    ("encrypted_approval", make_order("H-ENCRYPTED", [("SKU-1018", 1, "12999.00")]), finance_then_split),
]
POLLERS = {"batched_17track": poller_workflow_id("17track", TASK_QUEUE)}
SIM_URL: list[str] = []  # the running simulator's URL, for scenarios that set a journey


async def main(force: bool) -> None:
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=session_data_converter()
    )
    try:
        await register_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as tmp, running_simulator(advance="query") as sim_url:
            engine = make_engine(f"sqlite:///{tmp}/orderflow.db")
            upgrade(engine)
            seed(engine)
            settings = make_settings(Path(tmp), sim_url, decision_secret=DECISION_SECRET)
            SIM_URL[:] = [sim_url]
            async with running_worker(env.client, engine, settings, TASK_QUEUE):
                for name, order, play in SCENARIOS:
                    if (HISTORIES / f"{name}.json").exists() and not force:
                        continue
                    await play(env.client, engine, order)
                    handles = [order_workflow_id(order.order_no)]
                    async for event in env.client.get_workflow_handle(
                        order_workflow_id(order.order_no)
                    ).fetch_history_events():
                        attrs = event.start_child_workflow_execution_initiated_event_attributes
                        if attrs.workflow_id:
                            handles.append(attrs.workflow_id)
                    for index, workflow_id in enumerate(handles):
                        history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                        suffix = "" if index == 0 else f"_tracking{index}"
                        (HISTORIES / f"{name}{suffix}.json").write_text(history.to_json(), encoding="utf-8")
                        sys.stdout.write(f"recorded {name}{suffix}: {len(history.events)} events\n")
                    if name in POLLERS:  # it sleeps until its next sweep: stop it, keep what it did so far
                        poller = env.client.get_workflow_handle(POLLERS[name])
                        await poller.terminate(reason="recorded")
                        history = await poller.fetch_history()
                        (HISTORIES / f"{name}_poller.json").write_text(history.to_json(), encoding="utf-8")
                        sys.stdout.write(f"recorded {name}_poller: {len(history.events)} events\n")
            engine.dispose()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(force="--force" in sys.argv))
