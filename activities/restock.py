"""Waking backordered orders after a receipt (workflows/restock.py): the order commands' own sequence, with a
heartbeat per order so a worker that dies mid-way hands the rest to another within seconds."""

from __future__ import annotations

from temporalio import activity

from models.contracts import WakeBackorderedInput
from services.order_commands import notify_restock
from workflows.steps import RestockSteps


class RestockActivities(RestockSteps):
    @activity.defn
    async def wake_backordered_orders(self, inp: WakeBackorderedInput) -> list[str]:
        # A retry starts over: orders already served are no longer BACKORDERED and are skipped.
        return await notify_restock(activity.client(), inp.order_nos, inp.skus, on_each=activity.heartbeat)
