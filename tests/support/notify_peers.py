"""The far ends of the notify channels, live on loopback: the simulated SMS gateway (served by uvicorn) and the
aiosmtpd SMTP sink. The fixtures are registered for tests/integration by its conftest.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from dev.simulator.sms_gateway import SIM_SMS_KEY, ReceivedSms, ReceivedSmsList, sms_gateway_router
from dev.simulator.smtp_sink import SmtpSink, running_smtp_sink


@contextmanager
def running_sms_gateway(api_key: str = SIM_SMS_KEY, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Yield the gateway URL (http://127.0.0.1:PORT/sms, i.e. what sms_gateway_url takes); stop it on exit."""
    app = FastAPI(title="SMS gateway (simulated)")
    app.include_router(sms_gateway_router(api_key))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/sms"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sms-gateway-sim", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        with httpx.Client(timeout=1.0) as http:
            while True:
                if not thread.is_alive():
                    raise RuntimeError("SMS gateway thread died during start-up")
                try:
                    if http.get(f"{url}/messages").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"SMS gateway at {url} not up after {startup_timeout}s")
                time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class SmsGateway:
    """A test's handle on the running gateway, through its own HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(timeout=5.0)

    def received(self) -> list[ReceivedSms]:
        response = self._http.get(f"{self.url}/messages")
        response.raise_for_status()
        return ReceivedSmsList.model_validate_json(response.content).items

    def fail_next(self, times: int = 1, status: int = 503) -> None:
        self._http.post(f"{self.url}/faults", json={"times": times, "status": status}).raise_for_status()

    def reset(self) -> None:
        self._http.delete(f"{self.url}/messages").raise_for_status()

    def close(self) -> None:
        self._http.close()


@pytest.fixture(scope="session")
def sms_gateway_server() -> Iterator[str]:
    with running_sms_gateway() as url:
        yield url


@pytest.fixture
def sms_gateway(sms_gateway_server: str) -> Iterator[SmsGateway]:
    """The session's gateway, emptied (messages and faults) for this test."""
    gateway = SmsGateway(sms_gateway_server)
    gateway.reset()
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as sink:
        yield sink
