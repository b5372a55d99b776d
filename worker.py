"""The worker: builds the activities (engine, http client, settings injected) and runs both workflows."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
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
from services.audit import auditing
from services.automation.dispatcher import running_dispatcher
from services.automation.store import load_file
from services.notify.relay import running_relay
from services.notify.writer import NoticeWriter
from workflows.automation import AutomationRunWorkflow, AutomationScheduleWorkflow
from workflows.carrier_poller import CarrierPoller
from workflows.decision_guard import DecisionGuard
from workflows.order import OrderFulfillment
from workflows.restock import RestockWakeUp
from workflows.tracking import ShipmentTracking

WORKFLOWS = [
    OrderFulfillment,
    ShipmentTracking,
    CarrierPoller,
    RestockWakeUp,
    AutomationRunWorkflow,
    AutomationScheduleWorkflow,
]


def activity_functions(engine: Engine, settings: Settings, http: httpx.AsyncClient) -> list[Callable[..., Any]]:
    records = RecordActivities(engine, settings)
    inventory = InventoryActivities(engine, settings)
    picking = PickingActivities(engine, settings)
    tracking = TrackingActivities(engine, settings, http)
    notices = NoticeWriter.load(settings)  # the templates, loaded and checked once: a broken file stops the worker
    automation = AutomationActivities(engine, settings, http, notices)
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


async def main() -> None:
    configure_logging()
    settings = runtime_settings()
    log = structlog.get_logger("worker")
    engine = make_engine(settings.effective_database_url, pool_size=settings.worker_activity_threads + 4)
    upgrade(engine)
    # The default automations the database does not have yet (an edited rule is never overridden).
    load_file(engine, settings.automations_file, by="worker", now=datetime.now(UTC), only_new=True)
    client = await connect(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with (
        running_worker(client, engine, settings),
        running_relay(engine, settings),
        running_dispatcher(engine, client, settings),
    ):
        log.info("worker started", task_queue=settings.task_queue, address=settings.temporal_address)
        await stop.wait()
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
