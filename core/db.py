"""Engines and units of work. SQLite (default) serialises writers with BEGIN IMMEDIATE; Postgres locks rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Pool as large as the worker's activity threads, so no thread waits for a connection and none is
        # reopened (re-running the PRAGMAs) under load.
        engine = create_engine(
            url,
            # Below the activities' 30 s start-to-close: an attempt gives up waiting for the write lock before
            # Temporal retries it, so a stale attempt cannot commit behind its own retry.
            connect_args={"check_same_thread": False, "timeout": 20},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _sqlite_immediate_transactions(engine)
        return engine
    # No JIT: PostgreSQL compiles a query whose estimated cost passes jit_above_cost, which the cockpit's month
    # aggregates over a million orders do — half a second of compiling for a query of 50 ms (bench/cockpit.py).
    # work_mem 32 MB: their sorts (a month's reservations by SKU and day) stay in memory, not in temp files.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"options": "-c jit=off -c work_mem=32MB"},
    )


def _local_date(stored: str | None, zone: str) -> str | None:
    """A UTC timestamp as SQLAlchemy stores it on SQLite ("YYYY-MM-DD HH:MM:SS.ffffff") → its date in `zone`."""
    if stored is None:
        return None
    return datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(_zone(zone)).date().isoformat()


@lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _sqlite_immediate_transactions(engine: Engine) -> None:
    """Take the write lock at BEGIN so two allocations can never read the same 'available' and both write.

    This is SQLAlchemy's documented recipe: pysqlite's own transaction handling is switched off and we
    emit BEGIN ourselves.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=20000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        # PostgreSQL knows time zones, SQLite does not: the KPI queries' local dates come from Python here
        # (services/queries/sql_functions.py local_date).
        dbapi_connection.create_function("orderflow_local_date", 2, _local_date, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (read_only below) need no write lock: under WAL they see the last commit and never wait.
        deferred = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


READ_ONLY_OPTION = "orderflow_read_only"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One transaction: commits when the block ends normally, rolls back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_only(engine: Engine) -> Iterator[Session]:
    """A transaction that only reads (token checks, views): on SQLite it does not queue for the write lock."""
    with Session(engine.execution_options(**{READ_ONLY_OPTION: True}), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()  # ends the read; unlike rollback it leaves the loaded rows readable
        except BaseException:
            session.rollback()
            raise
