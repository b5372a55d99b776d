"""Notices to customers and staff, written once to the outbox (unique key) whatever the retries.

services/notify/writer.py does the writing (recipients, templates, links); this activity gives it the order
workflow's notice in the order's transaction. The templates are loaded and checked when the activities are built,
i.e. when the worker starts: a broken templates file stops the worker (TemplateError names kind and field).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from temporalio import activity

from activities.base import DbActivities
from core.config import Settings
from models.contracts import NotifyInput
from services.notify.writer import NoticeWriter
from workflows.steps import NotifySteps


class NotifyActivities(DbActivities, NotifySteps):
    def __init__(self, engine: Engine, settings: Settings, writer: NoticeWriter | None = None) -> None:
        super().__init__(engine, settings)
        self.writer = writer or NoticeWriter.load(settings)

    @activity.defn
    def notify(self, inp: NotifyInput) -> int:
        """Queue the notice for each recipient; returns how many outbox rows this call added."""
        with self.transaction(inp.order_no) as session:
            written = self.writer.write(
                session,
                key=inp.key,
                order_no=inp.order_no,
                kind=inp.kind,
                now=datetime.now(UTC),
                customer=inp.audience == "customer",
                role=inp.role.value if inp.role is not None else None,
                variables=inp.variables,
            )
        return len(written)
