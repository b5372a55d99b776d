"""Wait for a workflow to reach a status by querying it (real time, bounded)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio.client import WorkflowHandle

from models.contracts import OrderState
from models.status import OrderStatus
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
