"""The embedded stack as a user runs it (`python -m dev.stack up`: dev server, worker, simulator, API as
processes) on free loopback ports, in a fresh state dir, for e2e tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
