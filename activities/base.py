"""What every activity class holds: the database engine and the settings, injected by worker.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from core.config import Settings
from core.db import unit_of_work
from core.logging import bind_activity


class DbActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.log = structlog.get_logger(type(self).__module__)

    @contextmanager
    def transaction(self, order_no: str) -> Iterator[Session]:
        """Bind the log context for this activity and open one unit of work."""
        bind_activity(order_no, activity.info().activity_type, activity.info().workflow_id or "")
        with unit_of_work(self.engine) as session:
            yield session
