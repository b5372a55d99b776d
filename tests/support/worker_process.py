"""`python worker.py` as a real child process, so a test can SIGKILL it mid-work and start another.

Each start gets its own log file (<log_dir>/worker-<n>.log); `tail()` shows the end of every log for failure
messages. `stop_all()` ends every process this object started (SIGTERM, then SIGKILL), and only those.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def worker_env(
    *,
    temporal_address: str,
    database_url: str,
    task_queue: str,
    state_dir: Path,
    carrier_sim_url: str = "http://127.0.0.1:9",  # discard port: these tests never reach a carrier
    **settings: str,
) -> dict[str, str]:
    """The environment the worker reads its settings from; `settings` are extra ORDERFLOW_<NAME> values."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_address,
        "DATABASE_URL": database_url,
        "ORDERFLOW_TASK_QUEUE": task_queue,
        "ORDERFLOW_CARRIER_SIM_URL": carrier_sim_url,
        "ORDERFLOW_STATE_DIR": str(state_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"ORDERFLOW_{name.upper()}": value for name, value in settings.items()})
    return env


class WorkerProcesses:
    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"worker-{len(self.started) + 1}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append(process)
        self.logs.append(log)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no shutdown hook runs, in-flight activities are simply abandoned. Waits until gone."""
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self, timeout: float = 10.0) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(process)

    def tail(self, lines: int = 15) -> str:
        parts = []
        for process, log in zip(self.started, self.logs, strict=True):
            try:
                text = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = ["(no log)"]
            parts.append(f"--- {log.name} (pid {process.pid}, exit {process.poll()})\n" + "\n".join(text))
        return "\n".join(parts)
