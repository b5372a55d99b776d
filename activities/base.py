"""What every database activity class holds: the engine and the settings, injected by worker.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from core.config import Settings
from core.db import read_only, unit_of_work
from core.logging import bind_activity


class DbActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.log = structlog.get_logger(type(self).__module__)

    def _bind(self, order_no: str) -> None:
        info = activity.info()
        bind_activity(order_no, info.activity_type, info.workflow_id or "")

    @contextmanager
    def transaction(self, order_no: str) -> Iterator[Session]:
        """Bind the log context for this activity and open one unit of work."""
        self._bind(order_no)
        with unit_of_work(self.engine) as session:
            yield session

    @contextmanager
    def reading(self, order_no: str) -> Iterator[Session]:
        """Bind the log context and open a read-only transaction: on SQLite it does not wait for the write lock."""
        self._bind(order_no)
        with read_only(self.engine) as session:
            yield session
