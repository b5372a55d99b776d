"""RestockWakeUp: after a goods receipt, tell the orders waiting for that stock to look again — oldest first, each
given time to re-check before the next is told, so an older order is served first. One per receipt, started by
whoever booked it (API, CLI) without waiting: the booking answers at once, and the wake-up survives the caller."""

from __future__ import annotations

from temporalio import workflow

from workflows import contract
from workflows.steps import WAKING, WAKING_HEARTBEAT, RestockSteps

with workflow.unsafe.imports_passed_through():
    from models.contracts import WakeBackorderedInput


@workflow.defn(name=contract.RESTOCK_WORKFLOW)
class RestockWakeUp:
    @workflow.run
    async def run(self, inp: WakeBackorderedInput) -> list[str]:
        """The orders allocated by the time each had its turn."""
        return await workflow.execute_activity_method(
            RestockSteps.wake_backordered_orders,
            inp,
            start_to_close_timeout=WAKING.start_to_close,
            heartbeat_timeout=WAKING_HEARTBEAT,
            retry_policy=WAKING.retry,
        )
