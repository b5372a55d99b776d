"""Tests end what they start: a paid order that is cancelled starts its RefundPayment (an abandoned child), which
must finish before the test's worker stops (a workflow cut off mid-run is garbage-collected as an error)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.contract import refund_workflow_id


async def refund_finished(client: Client, order_no: str) -> None:
    """Wait for the order's refund workflow, if it has one."""
    handle = client.get_workflow_handle(refund_workflow_id(order_no))
    try:
        await handle.result()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
