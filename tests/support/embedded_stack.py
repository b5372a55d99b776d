"""The embedded stack as a user runs it (`python -m dev.stack up`: dev server, worker, simulator, API as
processes) on free loopback ports, in a fresh state dir, for e2e tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from core.db import make_engine, read_only
from services.errors import OrderNotFound
from services.queries.order_view import order_view

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_stack(tmp_path_factory: pytest.TempPathFactory, **overrides: str) -> Iterator[dict[str, str]]:
    """Yields the environment the stack's processes (and a test's CLI calls) run with; stops it afterwards."""
    state = tmp_path_factory.mktemp("stack")
    temporal_port = free_port()
    env = {
        **os.environ,
        "ORDERFLOW_STATE_DIR": str(state),
        "ORDERFLOW_TEMPORAL_PORT": str(temporal_port),
        "ORDERFLOW_TEMPORAL_UI_PORT": str(free_port()),
        "ORDERFLOW_SIMULATOR_PORT": str(free_port()),
        "ORDERFLOW_API_PORT": str(free_port()),
        "ORDERFLOW_SMTP_SINK_PORT": str(free_port()),
        "ORDERFLOW_SIMULATOR_STEP_SECONDS": "0.3",
        "ORDERFLOW_TRACKING_POLL_INTERVAL": "PT0.5S",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        **overrides,
    }
    up = subprocess.run([sys.executable, "-m", "dev.stack", "up"], cwd=ROOT, env=env, capture_output=True, text=True)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        subprocess.run([sys.executable, "-m", "dev.stack", "down"], cwd=ROOT, env=env, capture_output=True)


@lru_cache(maxsize=8)
def _stack_database(state_dir: str) -> Engine:
    return make_engine(f"sqlite:///{Path(state_dir) / 'orderflow.db'}", pool_size=1)


def read_order(stack: dict[str, str], order_no: str) -> dict[str, Any] | None:
    """What `orderflow status` prints for the order (the same read-model view, as the same JSON), without starting
    a CLI process each time (~2-4 s here): waits poll it every 0.3 s. None until the read model has the order."""
    try:
        with read_only(_stack_database(stack["ORDERFLOW_STATE_DIR"])) as session:
            view = order_view(session, order_no)
    except OrderNotFound:
        return None
    loaded: dict[str, Any] = json.loads(json.dumps(view, ensure_ascii=False, default=str))
    return loaded


def wait_status(stack: dict[str, str], order_no: str, *wanted: str, timeout: float = 60.0) -> dict[str, Any]:
    """The order's view once its status is one of `wanted`."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        view = read_order(stack, order_no)
        if view is not None and view["status"] in wanted:
            return view
        time.sleep(0.3)
    raise AssertionError(f"{order_no} is {view and view.get('status')}, wanted {wanted}")
