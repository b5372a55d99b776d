"""Keep the session-wide time-skipping server clean: terminate what a (failed) test left running.

A workflow left open with no worker holds a pending workflow task, and the time-skipping test server does
not skip time while work is pending: one failed test would then hang every later `handle.result()`.
Terminating is no cure for a workflow cut off mid-step (e.g. still compensating after a cancel when its
worker stopped): the test server then stays locked for good (seen with 1.40). Let such orders finish
(`await handle.result()`) inside the worker block.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError

from integrations.carriers.registry import BATCH_CARRIERS
from models.contracts import FulfillmentResult
from models.order import Order
from services import order_commands
from workflows.contract import order_workflow_id, poller_workflow_id
from workflows.order import OrderFulfillment


class StartedOrders:
    """Starts orders through order_commands.start (a time-skipping handle) and remembers their ids."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.workflow_ids: list[str] = []
        self.task_queues: set[str] = set()

    async def start(self, order: Order, task_queue: str) -> WorkflowHandle[OrderFulfillment, FulfillmentResult]:
        self.track(order_workflow_id(order.order_no))
        self.task_queues.add(task_queue)
        return await order_commands.start(self.client, order, task_queue)

    def track(self, workflow_id: str) -> None:
        if workflow_id not in self.workflow_ids:
            self.workflow_ids.append(workflow_id)

    async def terminate_running(self) -> list[str]:
        """Terminate every tracked workflow still running (children go with their parent) and the carrier pollers
        of the task queues used; returns their ids."""
        terminated: list[str] = []
        pollers = [poller_workflow_id(c, q) for q in sorted(self.task_queues) for c in sorted(BATCH_CARRIERS)]
        for workflow_id in [*self.workflow_ids, *pollers]:
            handle: WorkflowHandle[Any, Any] = self.client.get_workflow_handle(workflow_id)
            try:
                description = await handle.describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate(reason="test teardown")
                    terminated.append(workflow_id)
            except RPCError:
                continue  # never started, or already gone
        return terminated
