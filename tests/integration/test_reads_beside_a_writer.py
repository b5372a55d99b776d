"""Reads never queue behind a writer on SQLite: the worker holds the write lock for every step it records, and a
CLI view or a step that only reads must answer meanwhile (before, each waited up to the 20 s busy timeout)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

from activities.credit import CreditActivities
from activities.validation import ValidationActivities
from core.config import PROJECT_ROOT, Settings
from models.contracts import CreditInput, FulfillmentInput
from tests.support.orders import make_order

ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
# Seconds: a process start and a read (2-4 s here, 9 s seen on a loaded machine), below the 20 s busy timeout a
# queued read would wait (and then fail: the lock is held throughout).
FAST = 15.0


@contextmanager
def write_lock_held(database: Path) -> Iterator[None]:
    """Another connection inside BEGIN IMMEDIATE, as the worker is while it records a step."""
    writer = sqlite3.connect(database, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        writer.rollback()
        writer.close()


def _database(engine: Engine) -> Path:
    assert engine.url.database
    return Path(engine.url.database)


def test_cli_views_answer_while_the_worker_writes(sqlite_engine: Engine, tmp_path: Path) -> None:
    engine = sqlite_engine
    database = _database(engine)
    env = {**os.environ, "ORDERFLOW_STATE_DIR": str(database.parent), "ORDERFLOW_LOCAL_SECRETS": "true"}
    env.pop("DATABASE_URL", None)
    with write_lock_held(database):
        for command in (["inventory", "SKU-1001"], ["products"], ["customers"], ["report"], ["requisitions"]):
            started = time.monotonic()
            done = subprocess.run(
                [ORDERFLOW, *command, "--json"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
            )
            took = time.monotonic() - started
            assert done.returncode == 0, (command, done.stderr)
            assert took < FAST, f"{command} took {took:.1f} s behind the write lock"
            assert isinstance(json.loads(done.stdout), list | dict)


def test_steps_that_only_read_answer_while_another_step_writes(sqlite_engine: Engine, settings: Settings) -> None:
    engine = sqlite_engine
    order = make_order("T-READS-1", [("SKU-1001", 1, "199.00")])
    with write_lock_held(_database(engine)):
        started = time.monotonic()
        outcome = ActivityEnvironment().run(
            ValidationActivities(engine, settings).validate_order, FulfillmentInput(order=order)
        )
        credit = ActivityEnvironment().run(
            CreditActivities(engine, settings).check_credit,
            CreditInput(order_no=order.order_no, customer_id=order.customer_id, total=order.total),
        )
        took = time.monotonic() - started
    assert outcome.reasons == [] and not credit.hold
    assert took < 2.0, f"validation and credit took {took:.1f} s behind the write lock"
