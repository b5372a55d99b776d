"""Wait for a workflow to reach a status by querying it, or to be parked in a wait (real time, bounded)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from models.contracts import OrderState
from models.status import OrderStatus
from models.tables import SalesOrder
from workflows.order import OrderFulfillment


async def wait_for_status(
    handle: WorkflowHandle[Any, Any], *statuses: OrderStatus, timeout: float = 20.0
) -> OrderState:
    deadline = time.monotonic() + timeout
    state: OrderState | None = None
    while time.monotonic() < deadline:
        state = await handle.query(OrderFulfillment.state)
        if state.status in statuses:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} still {state.status if state else '?'}; wanted {statuses}")


async def wait_for_recorded(engine: Engine, order_no: str, status: OrderStatus, timeout: float = 20.0) -> None:
    """Wait until the read model holds the status: the workflow's query answers it as soon as it moves, before its
    record_transition activity has written the row that services reading the database (a credit recheck) see."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Session(engine) as session:
            order = session.get(SalesOrder, order_no)
        if order is not None and order.status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{order_no} not recorded {status} after {timeout} s")


async def wait_until_parked(handle: WorkflowHandle[Any, Any], timeout: float = 20.0) -> None:
    """Wait until the workflow has no activity in flight and its last workflow task has completed: it is parked
    in a wait. Cancelling a workflow in the same task as one of its activities completes makes the time-skipping
    test server refuse the activity's cancel (ACTIVITY_UNKNOWN) and the workflow hang there
    (temporalio/sdk-java#2391); the real server copes. Tests that cancel from Temporal wait for this first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await handle.describe()
        if not described.raw_description.pending_activities:
            tasks = [e.event_type async for e in handle.fetch_history_events() if e.event_type in _WORKFLOW_TASK_EVENTS]
            if tasks and tasks[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} still busy after {timeout} s")


_WORKFLOW_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
