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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from dev.seed import seed
from dev.temporal_admin import register_search_attributes
from models.contracts import PollerInput
from models.order import Order
from models.status import OrderStatus
from models.tables import SalesOrder, Shipment
from services import order_commands, stock
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from services.stock import Receipt
from tests.conftest import binary, make_settings, session_data_converter
from tests.support.orders import make_order
from tests.support.read_model import add_order
from tests.support.simulator import running_simulator
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows import contract
from workflows.contract import order_workflow_id, poller_workflow_id, refund_workflow_id

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


async def paid_cancelled_refunded(client: Client, engine: Engine, order: Order) -> None:
    """Prepaid, paid, cancelled in picking: its RefundPayment pays the money back through the simulated provider."""
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.AWAITING_PAYMENT)
    await order_commands.pay(client, order.order_no, reference=f"BANK-{order.order_no}", by="fiona")
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.cancel(client, order.order_no, reason="customer changed their mind")
    await handle.result()
    await client.get_workflow_handle(refund_workflow_id(order.order_no)).result()


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


async def director_level(client: Client, engine: Engine, order: Order) -> None:
    """Over 50,000: finance, then the finance director (another person: four eyes)."""
    handle = await order_commands.start(client, order, TASK_QUEUE)
    for user in ("fiona", "derek"):
        await _await_level(handle, user)
        await order_commands.decide(
            client, engine, order.order_no, user=user, decision="approve", comment="ok", secret=DECISION_SECRET
        )
    await _dispatch_all(client, handle, order)


async def credit_hold(client: Client, engine: Engine, order: Order) -> None:
    """The customer's exposure would pass its limit: CREDIT_HOLD until finance decides, then on to delivery."""
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.CREDIT_HOLD)
    await order_commands.decide(
        client, engine, order.order_no, user="fiona", decision="approve", comment="known", secret=DECISION_SECRET
    )
    await _dispatch_all(client, handle, order)


async def credit_released_by_payment(client: Client, engine: Engine, order: Order) -> None:
    """On hold for credit only; a payment of the customer's open invoice brings the exposure under the limit: the
    order is told (credit_recheck), checks again and goes on without a person (the credit-release-on-payment patch)."""
    paid = f"{order.order_no}-PAID"
    add_order(engine, paid, rep="bob", sku="SKU-1001", customer=order.customer_id, qty=100)  # 1,000.00 invoiced
    with unit_of_work(engine) as session:
        row = session.get(SalesOrder, paid)
        assert row is not None
        policy = InvoicePolicy("OF", {"standard": Decimal("0.13")})
        issue_invoice(
            session, key=f"{paid}:p", order=row, billed=[Billed(1, 100)], policy=policy, now=datetime.now(UTC)
        )
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.CREDIT_HOLD)
    await order_commands.receive_payment(client, engine, paid, reference=f"{paid}-BANK", amount=None, by="fiona")
    await _dispatch_all(client, handle, order)


async def backorder_restock(client: Client, engine: Engine, order: Order) -> None:
    """Short of stock: BACKORDERED and a requisition; a goods receipt wakes it (RestockWakeUp, recorded too)."""
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.BACKORDERED)
    booked = stock.receive(engine, Receipt(sku="SKU-1024", warehouse="WH-GZ", qty=4, lot="L-REC-1"))
    waiting = stock.backordered_orders(engine, "SKU-1024")
    EXTRA[order.order_no] = [await order_commands.wake_backordered(client, booked, waiting, ["SKU-1024"], TASK_QUEUE)]
    await client.get_workflow_handle(EXTRA[order.order_no][0]).result()
    await _dispatch_all(client, handle, order)


async def kuaidi100_subscribed(client: Client, engine: Engine, order: Order) -> None:
    """A Kuaidi100 parcel: subscribed for the carrier's pushes at dispatch (the recorder's public URL), polled too."""
    await _journey(client, order, "kuaidi100", "RECKD100SUB1", "happy")


async def returned_parcel(client: Client, engine: Engine, order: Order) -> None:
    """Refused at the door and sent back: RETURNED, the order FAILED."""
    await _journey(client, order, "sim", "RECRETURN1", "refusal")


async def expired_parcel(client: Client, engine: Engine, order: Order) -> None:
    """The carrier never knows the parcel: stalled after 3 days, EXPIRED after 30, the order FAILED."""
    fault = {"tracking_no": "RECEXPIRE1", "kind": "unknown", "times": None}
    async with httpx.AsyncClient(timeout=5) as http:
        (await http.post(f"{SIM_URL[0]}/sim/faults", json=fault)).raise_for_status()
    handle = await order_commands.start(client, order, TASK_QUEUE)
    await wait_for_status(handle, OrderStatus.PICKING)
    await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier="sim", tracking_no="RECEXPIRE1")
    await handle.result()


async def _await_level(handle: WorkflowHandle[Any, Any], user: str) -> None:
    deadline = asyncio.get_running_loop().time() + 20
    role = {"fiona": "finance", "derek": "finance_director"}[user]
    while True:
        state = await wait_for_status(handle, OrderStatus.AWAITING_APPROVAL)
        if state.pending_approval is not None and state.pending_approval.role == role:
            return
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.05)


async def _dispatch_all(client: Client, handle: WorkflowHandle[Any, Any], order: Order) -> None:
    picking = await wait_for_status(handle, OrderStatus.PICKING)
    for index, warehouse in enumerate(picking.awaiting_dispatch):
        await order_commands.dispatch(
            client, order.order_no, warehouse=warehouse, carrier="sim", tracking_no=f"REC-{order.order_no}-{index}"
        )
    await handle.result()


async def poller_continues_as_new(client: Client, engine: Engine) -> list[str]:
    """A CarrierPoller whose run grows long while it waits (many parcels opened within an interval) continues as
    new; returns the ids of its runs' workflow (the first run is the one recorded)."""
    now = await ENV[0].get_current_time()
    with Session(engine) as session:  # an open parcel, so the poller does not end for lack of work
        session.add(Shipment(order_no="H-POLLER", warehouse="WH-SH", carrier="17track", tracking_no="RECPOLL0",
                             dispatched_at=now))  # fmt: skip
        session.commit()
    poller_id = poller_workflow_id("17track", f"{TASK_QUEUE}-poller")
    first = await client.start_workflow(
        contract.POLLER_WORKFLOW,
        PollerInput(carrier="17track", interval=timedelta(hours=1), max_events_per_run=60),
        id=poller_id,
        task_queue=TASK_QUEUE,
    )
    first = client.get_workflow_handle(poller_id, run_id=first.result_run_id)  # that run, not the latest
    latest = client.get_workflow_handle(poller_id)
    for index in range(40):
        for _ in range(50):
            try:
                await latest.signal(contract.Signal.PARCEL_OPENED, f"track-17track-RECPOLL{index}")
                break
            except RPCError:
                await asyncio.sleep(0.05)
    deadline = asyncio.get_running_loop().time() + 30
    while (await first.describe()).status == WorkflowExecutionStatus.RUNNING:
        if asyncio.get_running_loop().time() > deadline:
            events = [e.event_type for e in (await first.fetch_history()).events]
            raise AssertionError(f"the poller never continued as new: {len(events)} events, last {events[-8:]}")
        await asyncio.sleep(0.1)
    await latest.terminate(reason="recorded")
    return [first.result_run_id or ""]


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
    # Recorded at the rooms issue (typed steps, stage timeouts): paths no earlier history covered.
    ("backorder_restock", make_order("H-BACKORDER", [("SKU-1024", 11, "299.00")]), backorder_restock),
    ("payment_deadline", make_order("H-PAYMENT", payment={"method": "prepaid", "paid": False}), to_the_end),
    ("credit_hold", make_order("H-CREDIT", [("SKU-1008", 2, "1599.00")], customer_id="C-1005"), credit_hold),
    ("director_level", make_order("H-DIRECTOR", [("SKU-1018", 5, "12999.00")]), director_level),
    ("returned_parcel", make_order("H-RETURNED"), returned_parcel),
    ("expired_parcel", make_order("H-EXPIRED"), expired_parcel),
    ("kuaidi100_subscribed", make_order("H-KD100"), kuaidi100_subscribed),
    # Recorded after the dispatch-notice-by-rule patch (issue 12): the dispatch notice is an automation's.
    ("dispatch_notice_by_rule", make_order("H-NOTICE-RULE"), happy),
    # Recorded after the order-notices-by-rule patch: delivery news and a cancellation told by default rules.
    ("order_notices_by_rule", make_order("H-NOTICES-RULE"), happy),
    ("cancelled_notice_by_rule", make_order("H-CANCEL-RULE"), cancelled),
    # Recorded after the credit-release-on-payment patch (issue 13): C-1005 opened owing 47,500 of 50,000.
    (
        "credit_released_by_payment",
        make_order("H-CREDIT-PAID", [("SKU-1001", 10, "199.00")], customer_id="C-1005"),
        credit_released_by_payment,
    ),
    # Recorded after the refund-through-provider patch (issue 13): the paid order's refund is a child workflow.
    (
        "paid_cancelled_refunded",
        make_order("H-REFUNDED", payment={"method": "prepaid", "paid": False}),
        paid_cancelled_refunded,
    ),
]
# Workflows a scenario started besides its order and the order's children (e.g. a receipt's RestockWakeUp).
EXTRA: dict[str, list[str]] = {}
ENV: list[WorkflowEnvironment] = []
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
            seed(engine, console_passwords=False)
            # A public URL nothing listens on: Kuaidi100 parcels are subscribed (the recorded command), the
            # simulator's pushes to it fail harmlessly and polling follows the parcel.
            settings = make_settings(
                Path(tmp),
                sim_url,
                decision_secret=DECISION_SECRET,
                public_api_url="http://127.0.0.1:9",
                tracking_poll_interval=timedelta(hours=6),
            )
            SIM_URL[:] = [sim_url]
            ENV[:] = [env]
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
                    for extra in EXTRA.get(order.order_no, []):
                        history = await env.client.get_workflow_handle(extra).fetch_history()
                        (HISTORIES / f"{name}_{extra.split('-')[0]}.json").write_text(
                            history.to_json(), encoding="utf-8"
                        )
                        sys.stdout.write(f"recorded {name}_{extra.split('-')[0]}: {len(history.events)} events\n")
                    if name in POLLERS:  # it sleeps until its next sweep: stop it, keep what it did so far
                        poller = env.client.get_workflow_handle(POLLERS[name])
                        await poller.terminate(reason="recorded")
                        history = await poller.fetch_history()
                        (HISTORIES / f"{name}_poller.json").write_text(history.to_json(), encoding="utf-8")
                        sys.stdout.write(f"recorded {name}_poller: {len(history.events)} events\n")
                if force or not (HISTORIES / "poller_continued_as_new.json").exists():
                    [run_id] = await poller_continues_as_new(env.client, engine)
                    poller = env.client.get_workflow_handle(poller_workflow_id("17track", f"{TASK_QUEUE}-poller"))
                    history = await env.client.get_workflow_handle(poller.id, run_id=run_id).fetch_history()
                    (HISTORIES / "poller_continued_as_new.json").write_text(history.to_json(), encoding="utf-8")
                    sys.stdout.write(f"recorded poller_continued_as_new: {len(history.events)} events\n")
            engine.dispose()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(force="--force" in sys.argv))
