"""dev.stack without starting Temporal: port checks, command lines, pid-file bookkeeping."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings, get_settings
from dev import stack
from dev.stack import SEARCH_ATTRIBUTES, PortClaim, StackError, check_ports

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return get_settings().model_copy(update={"state_dir": tmp_path / "state"})


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A harmless long-running process in its own session, like the stack's children."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield child
    child.kill()
    child.wait()


def test_taken_port_gives_one_clear_line() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StackError) as info:
            check_ports([PortClaim(port, "Temporal gRPC", "ORDERFLOW_TEMPORAL_PORT")])
    message = str(info.value)
    assert "\n" not in message
    assert f"port {port}" in message and "Temporal gRPC" in message
    assert "ORDERFLOW_TEMPORAL_PORT" in message


def test_free_port_passes_and_duplicates_are_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check_ports([PortClaim(port, "carrier simulator", "ORDERFLOW_SIMULATOR_PORT")])
    with pytest.raises(StackError, match=f"port {port} is wanted by both Temporal UI and carrier"):
        check_ports(
            [
                PortClaim(port, "Temporal UI", "ORDERFLOW_TEMPORAL_UI_PORT"),
                PortClaim(port, "carrier simulator", "ORDERFLOW_SIMULATOR_PORT"),
            ]
        )


def test_temporal_command_line(settings: Settings) -> None:
    argv = stack.temporal_argv("temporal", settings)
    assert argv[:3] == ["temporal", "server", "start-dev"]
    pairs = list(zip(argv, argv[1:], strict=False))
    assert ("--port", str(settings.temporal_port)) in pairs
    assert ("--ui-port", str(settings.temporal_ui_port)) in pairs
    assert ("--db-filename", str(settings.state_dir.resolve() / "temporal.db")) in pairs
    assert ("--sqlite-pragma", "journal_mode=wal") in pairs
    assert ("--sqlite-pragma", "synchronous=normal") in pairs
    registered = dict(v.split("=", 1) for k, v in pairs if k == "--search-attribute")
    assert registered == dict(SEARCH_ATTRIBUTES)
    # The UI shows encrypted payloads decoded through the API's codec endpoints, which let the UI's origin in.
    assert ("--ui-codec-endpoint", f"http://127.0.0.1:{settings.api_port}/codec") in pairs
    origins = json.loads(stack.child_env(settings)["ORDERFLOW_CODEC_CORS_ORIGINS"])
    assert f"http://localhost:{settings.temporal_ui_port}" in origins


def test_children_get_loopback_addresses(settings: Settings) -> None:
    env = stack.child_env(settings)
    assert env["TEMPORAL_ADDRESS"] == f"127.0.0.1:{settings.temporal_port}"
    assert env["ORDERFLOW_CARRIER_SIM_URL"] == f"http://127.0.0.1:{settings.simulator_port}"


def test_down_is_idempotent_and_status_reports_stopped(settings: Settings) -> None:
    lines: list[str] = []
    stack.down(settings, echo=lines.append)
    stack.down(settings, echo=lines.append)
    assert lines == [f"{name} not running" for name in reversed(stack.SERVICE_NAMES)] * 2
    assert stack.status(settings) == dict.fromkeys(stack.SERVICE_NAMES)


def test_stale_and_foreign_pid_files_are_dropped_not_killed(
    settings: Settings, sleeper: subprocess.Popen[bytes]
) -> None:
    _, run_dir, _ = stack.state_paths(settings)
    run_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run_dir / "simulator.pid").write_text(f"{dead.pid}\n")
    # A live pid whose command line is not the worker's (e.g. a recycled pid) must survive.
    (run_dir / "worker.pid").write_text(f"{sleeper.pid}\n")
    (run_dir / "temporal.pid").write_text("garbage\n")
    stack.down(settings, echo=lambda _: None)
    assert sleeper.poll() is None
    assert list(run_dir.iterdir()) == []


def test_terminate_stops_a_process_group(sleeper: subprocess.Popen[bytes]) -> None:
    stack.terminate(sleeper.pid, timeout=5)
    assert sleeper.wait(timeout=5) != 0


def test_already_running_service_is_not_started_twice(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _, run_dir, _ = stack.state_paths(settings)
    run_dir.mkdir(parents=True)
    for name in stack.SERVICE_NAMES:
        (run_dir / f"{name}.pid").write_text("4242\n")
    monkeypatch.setattr(stack, "running_pid", lambda run_dir, name: 4242)
    monkeypatch.setattr(stack, "temporal_binary", lambda: "temporal")

    def no_spawn(*args: object) -> int:
        raise AssertionError("must not start anything")

    monkeypatch.setattr(stack, "_spawn", no_spawn)
    lines: list[str] = []
    stack.up(settings, echo=lines.append)
    assert [line for line in lines if "already running" in line] == [
        f"{name} already running (pid 4242)" for name in stack.SERVICE_NAMES
    ]
