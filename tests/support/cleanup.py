"""Orders a test starts: a time-skipping handle each (each test has its own time-skipping server,
tests/conftest.py `time_env`, so whatever a test leaves running ends with it).

Still finish an order inside the worker block (`await handle.result()`) when the test is about its end state: a
workflow cut off mid-step by its worker stopping tells nothing about that.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle

from models.contracts import FulfillmentResult
from models.order import Order
from services import order_commands


class StartedOrders:
    """Starts orders through order_commands.start on the test's client (a time-skipping handle each)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def start(self, order: Order, task_queue: str) -> WorkflowHandle[Any, FulfillmentResult]:
        return await order_commands.start(self.client, order, task_queue)
