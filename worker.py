"""The worker: builds the activities (engine, http client, settings injected) and runs both workflows.

`python worker.py` also runs the readers of the two outboxes — the notice relay and the automation dispatcher — in a
child process of their own (`python worker.py --outboxes`): sending notices, matching events and doing
database-only firings is Python work that would otherwise take the worker's interpreter lock from the order
pipeline. The kernel kills the child when the worker dies, however it dies; nothing is lost either way (both work
transactionally on keyed rows). The child runs at niceness ORDERFLOW_OUTBOX_NICE (10): on a saturated machine the
order pipeline goes first. ORDERFLOW_OUTBOX_PROCESS=inline keeps them in the worker's process.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.automation import AutomationActivities
from activities.credit import CreditActivities
from activities.inventory import InventoryActivities
from activities.notify import NotifyActivities
from activities.picking import PickingActivities
from activities.records import RecordActivities
from activities.refunds import RefundActivities
from activities.restock import RestockActivities
from activities.review import ReviewActivities
from activities.shipping import ShippingActivities
from activities.tracking import TrackingActivities
from activities.validation import ValidationActivities
from core.config import Settings
from core.db import make_engine
from core.logging import configure_logging
from core.migrate import upgrade
from core.secrets import runtime_settings
from core.temporal import connect
from services import order_facts
from services.audit import auditing
from services.automation.dispatcher import running_dispatcher
from services.automation.store import load_file
from services.notify.relay import running_relay
from services.notify.writer import NoticeWriter
from workflows.automation import AutomationRunWorkflow, AutomationScheduleWorkflow
from workflows.carrier_poller import CarrierPoller
from workflows.decision_guard import DecisionGuard
from workflows.order import OrderFulfillment
from workflows.refund import RefundPayment
from workflows.restock import RestockWakeUp
from workflows.tracking import ShipmentTracking

WORKFLOWS = [
    OrderFulfillment,
    ShipmentTracking,
    CarrierPoller,
    RestockWakeUp,
    AutomationRunWorkflow,
    AutomationScheduleWorkflow,
    RefundPayment,
]


def activity_functions(engine: Engine, settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    records = RecordActivities(engine, settings)
    inventory = InventoryActivities(engine, settings)
    picking = PickingActivities(engine, settings)
    tracking = TrackingActivities(engine, settings, http)
    notices = NoticeWriter.load(settings)  # the templates, loaded and checked once: a broken file stops the worker
    automation = AutomationActivities(engine, settings, http, notices)
    refunds = RefundActivities(engine, settings, http, notices)
    return [
        records.register_order,
        records.record_transition,
        records.record_approval,
        ValidationActivities(engine, settings).validate_order,
        ReviewActivities(engine, settings).review_order,
        CreditActivities(engine, settings).check_credit,
        inventory.allocate_stock,
        inventory.release_stock,
        picking.issue_pick_lists,
        picking.void_pick_lists,
        ShippingActivities(engine, settings).record_dispatch,
        NotifyActivities(engine, settings, notices).notify,
        tracking.poll_parcel,
        tracking.sweep_carrier,
        tracking.ensure_carrier_poller,
        tracking.subscribe_parcel,
        tracking.close_parcel,
        RestockActivities().wake_backordered_orders,
        automation.choose_branch,
        automation.perform_action,
        automation.record_step,
        automation.fire_schedule,
        refunds.open_refund,
        refunds.record_refund_decision,
        refunds.pay_out_refund,
        refunds.complete_refund,
        refunds.fail_refund,
    ]


# The sandbox re-imports, for every workflow run, each module it does not pass through: our pure modules (the
# contracts' pydantic models, statuses, durations, the steps' interfaces) are passed through instead, so a run's
# start does not rebuild them (an automation firing is a short workflow: that rebuild was most of its CPU).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "models", "domain", "workflows.contract", "workflows.steps"
    )
)


@asynccontextmanager
async def running_worker(
    client: Client, engine: Engine, settings: Settings, task_queue: str | None = None, *, sticky: bool = True
) -> AsyncIterator[Worker]:
    """A started worker for the duration of the block (used by main() and by the tests). `sticky=False` keeps no
    workflow in its cache, so another worker takes its workflows over at once (the server hands a sticky worker's
    workflows to others only after its sticky timeout)."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            guard = DecisionGuard(settings.decision_secret)
            worker = Worker(
                client,
                task_queue=task_queue or settings.task_queue,
                workflows=WORKFLOWS,
                activities=activity_functions(engine, settings, http),
                activity_executor=executor,
                max_concurrent_activities=settings.worker_activity_threads,
                interceptors=[guard],
                max_cached_workflows=1000 if sticky else 0,  # 1000: the SDK's default
                workflow_runner=WORKFLOW_RUNNER,
            )
            async with auditing(guard.refusals, engine), worker:
                yield worker


OUTBOXES_FLAG = "--outboxes"  # the child: the notice relay and the automation dispatcher
PARENT_ENV = "ORDERFLOW_WORKER_PID"
PR_SET_PDEATHSIG = 1


def _die_with_the_worker() -> None:
    """In the child before it runs: the kernel sends it SIGKILL when its parent dies (a SIGKILLed worker leaves no
    dispatcher behind)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@contextmanager
def outbox_process() -> Iterator[subprocess.Popen[bytes]]:
    """The outboxes' process for the duration of the block; stopped (SIGTERM, then SIGKILL after 30 s) when it
    ends. Started before any thread of ours, as preexec functions require."""
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), OUTBOXES_FLAG],
        env={**os.environ, PARENT_ENV: str(os.getpid())},
        preexec_fn=_die_with_the_worker,  # noqa: PLW1509 - no thread of ours runs yet
    )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def main() -> None:
    configure_logging()
    settings = runtime_settings()
    log = structlog.get_logger("worker")
    engine = make_engine(settings.effective_database_url, pool_size=settings.worker_activity_threads + 4)
    upgrade(engine)
    # Orders registered before the KPI read model existed (migration 0018) get their facts once.
    if rebuilt := order_facts.rebuild(engine, settings.business_zone, only_missing=True):
        log.info("order facts derived", orders=rebuilt)
    # The default automations the database does not have yet (an edited rule is never overridden).
    load_file(engine, settings.automations_file, by="worker", now=datetime.now(UTC), only_new=True)
    apart = settings.outbox_process == "child"
    automations_here = settings.automations_enabled and not apart
    with outbox_process() if apart else nullcontext() as child:
        client = await connect(settings)
        stop = _stop_on_signals()
        if child is not None:  # an outbox process that dies stops the worker too: both are restarted together
            watch = asyncio.ensure_future(asyncio.to_thread(child.wait))
            watch.add_done_callback(lambda _: stop.set())
        async with (
            running_worker(client, engine, settings),
            nullcontext() if apart else running_relay(engine, settings),
            running_dispatcher(engine, client, settings.model_copy(update={"automations_enabled": automations_here})),
        ):
            log.info(
                "worker started",
                task_queue=settings.task_queue,
                address=settings.temporal_address,
                outbox_pid=child.pid if child else None,
            )
            await stop.wait()
            died = child is not None and child.poll() is not None
    if died:
        assert child is not None
        log.error("the outbox process ended: the worker stops too", returncode=child.returncode)
        raise SystemExit(1)  # a supervisor restarts the pair
    log.info("worker stopped")


async def outboxes_main() -> None:
    """The child: the notice relay and the automation dispatcher, until SIGTERM (or the worker's death)."""
    configure_logging()
    if os.environ.get(PARENT_ENV) and os.getppid() != int(os.environ[PARENT_ENV]):
        return  # the worker died before the kernel was told to take this process with it
    settings = runtime_settings()
    os.nice(settings.outbox_nice)  # background work: the order pipeline's processes go first on a busy machine
    engine = make_engine(settings.effective_database_url, pool_size=4)
    client = await connect(settings)
    stop = _stop_on_signals()
    async with running_relay(engine, settings), running_dispatcher(engine, client, settings):
        structlog.get_logger("worker").info(
            "outbox process started", worker_pid=os.getppid(), nice=os.getpriority(os.PRIO_PROCESS, 0)
        )
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(outboxes_main() if OUTBOXES_FLAG in sys.argv[1:] else main())
