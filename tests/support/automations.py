"""Automations in a test: the rules stored, the dispatcher running beside the test's worker, the run log read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from core.config import Settings
from core.db import unit_of_work
from models.tables import AutomationRun, AutomationStep, Notification
from services.automation import store
from services.automation.dispatcher import Dispatcher, temporal_starter
from services.notify.writer import NoticeWriter
from worker import running_worker


def save_rules(engine: Engine, rules: Sequence[dict[str, Any]], *, by: str = "root") -> list[store.StoredRule]:
    with unit_of_work(engine) as session:
        return [store.save(session, rule, by=by, note="test", now=datetime.now(UTC)) for rule in rules]


@asynccontextmanager
async def dispatching(
    engine: Engine,
    client: Client,
    settings: Settings,
    rules: Sequence[dict[str, Any]] = (),
    *,
    defaults: bool = False,
    immediate: bool = True,
) -> AsyncIterator[Dispatcher]:
    """The rules given (and the default file's, `defaults`) stored, and a dispatcher passing every 0.05 s
    (`immediate`: database-only firings done in its transaction, else every firing a workflow)."""
    if defaults:
        store.load_file(engine, settings.automations_file, by="test", now=datetime.now(UTC), only_new=True)
    save_rules(engine, rules)
    dispatcher = Dispatcher(
        engine,
        temporal_starter(client, settings.task_queue),
        notices=NoticeWriter.load(settings),
        interval=0.05,
        immediate=immediate,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        dispatcher.stop()
        await task
    while (await dispatcher.pass_once()).events:  # what the block's last changes wrote fires before it ends
        pass


@asynccontextmanager
async def worker_and_default_rules(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> AsyncIterator[Dispatcher]:
    """A worker and a dispatcher of the default automations: the order's news (dispatched, delivered, cancelled,
    backordered …) are default rules, so a test that checks those notices runs both."""
    async with (
        running_worker(client, engine, settings, task_queue),
        dispatching(engine, client, settings, defaults=True) as dispatcher,
    ):
        yield dispatcher


def runs_of(engine: Engine, rule: str, subject: str | None = None) -> list[AutomationRun]:
    with Session(engine) as session:
        query = select(AutomationRun).where(AutomationRun.rule == rule)
        if subject is not None:
            query = query.where(AutomationRun.subject == subject)
        return list(session.exec(query.order_by(col(AutomationRun.started_at))).all())


def steps_of(engine: Engine, run_id: str) -> list[AutomationStep]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AutomationStep)
                .where(AutomationStep.run_id == run_id)
                .order_by(col(AutomationStep.attempt), col(AutomationStep.position))
            ).all()
        )


async def wait_for_run(engine: Engine, rule: str, subject: str, *states: str, timeout: float = 20.0) -> AutomationRun:
    """The rule's run on the subject once it is in one of `states`."""
    deadline = time.monotonic() + timeout
    found: list[AutomationRun] = []
    while time.monotonic() < deadline:
        found = runs_of(engine, rule, subject)
        if found and found[-1].state in states:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rule} on {subject}: {[run.state for run in found]}; wanted one {states}")


def notices_of(engine: Engine, rule: str) -> list[Notification]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Notification).where(Notification.kind == f"automation:{rule}").order_by(col(Notification.id))
            ).all()
        )
