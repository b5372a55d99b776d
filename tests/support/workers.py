"""A real worker with some activities swapped for test doubles registered under the same activity name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from core.config import Settings
from services.audit import auditing
from worker import WORKFLOW_RUNNER, WORKFLOWS, activity_functions
from workflows.decision_guard import DecisionGuard


@asynccontextmanager
async def running_worker_with(
    client: Client,
    engine: Engine,
    settings: Settings,
    task_queue: str,
    *,
    replace: dict[str, Callable[..., Any]],
) -> AsyncIterator[Worker]:
    """Like worker.running_worker, but each activity named in `replace` is served by the given callable.

    The callables must be `@activity.defn(name=<same name>)`, so the workflow's calls reach them unchanged.
    """
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
            real = activity_functions(engine, settings, http)
            names = {fn.__name__ for fn in real}
            unknown = set(replace) - names
            if unknown:
                raise ValueError(f"no such activities to replace: {sorted(unknown)}")
            activities = [fn for fn in real if fn.__name__ not in replace] + list(replace.values())
            guard = DecisionGuard(settings.decision_secret)
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=WORKFLOWS,
                activities=activities,
                activity_executor=executor,
                max_concurrent_activities=settings.worker_activity_threads,
                interceptors=[guard],
                workflow_runner=WORKFLOW_RUNNER,
            )
            async with auditing(guard.refusals, engine), worker:
                yield worker
