"""Run the real carrier simulator on a free loopback port for the duration of a `with` block."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from dev.simulator.carriers import create_app


@contextmanager
def running_simulator(
    step_seconds: float = 0.05, advance: str = "time", *, startup_timeout: float = 10.0
) -> Iterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of a live simulator; stop it on exit."""
    # Bind here and hand the socket to uvicorn: port 0 gives a free port with no race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(create_app(step_seconds, advance), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    # Signal handlers are only installed from the main thread, so a thread is safe here.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"carrier-sim-{port}", daemon=True)
    thread.start()
    try:
        _wait_healthy(base_url, thread, startup_timeout)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_healthy(base_url: str, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                raise RuntimeError("carrier simulator thread died during start-up")
            try:
                if http.get(f"{base_url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    raise TimeoutError(f"carrier simulator at {base_url} not healthy after {timeout}s")
