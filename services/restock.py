"""A goods receipt, then the backordered orders it may serve woken, oldest first (the API's POST
/inventory/receipts and the console's ops page): the receipt is booked whatever happens next; waking is best
effort, since the orders also re-check by themselves, so a Temporal outage never makes anyone book it twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Engine
from temporalio.client import Client

from services import order_commands, stock
from services.stock import Receipt

log = structlog.get_logger(__name__)


async def receive_and_wake(
    engine: Engine,
    receipt: Receipt,
    by: str,
    *,
    connect: Callable[[], Awaitable[Client]],
    task_queue: str,
    answering: int | None = None,
) -> dict[str, Any]:
    """The booked receipt (stock.receive: ReceiptConflict, CommandError; `answering` a requisition that must be
    open) with `backordered_orders`, and `woken_by` (the RestockWakeUp workflow) or a `note` saying why they
    were not woken now."""
    booked = await asyncio.to_thread(partial(stock.receive, answering=answering), engine, receipt, by)
    waiting = await asyncio.to_thread(stock.backordered_orders, engine, receipt.sku)
    booked["backordered_orders"] = waiting
    if waiting:
        try:
            booked["woken_by"] = await order_commands.wake_backordered(
                await connect(), booked, waiting, [receipt.sku], task_queue
            )
        except Exception as exc:  # noqa: BLE001 — best effort by design (see the module's docstring)
            log.warning("waiting orders not woken now", sku=receipt.sku, error=str(exc))
            booked["note"] = f"waiting orders not woken now ({getattr(exc, 'detail', exc)}); they re-check later"
    return booked
