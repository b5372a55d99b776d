"""Fixtures of the integration tests: the API in-process (ASGI) on the test's engine, client and settings, and
the notification peers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client

from core.config import Settings
from entrypoints.api.app import create_app
from tests.support.notify_peers import sms_gateway, sms_gateway_server, smtp_sink  # noqa: F401  (fixtures)


@pytest.fixture
async def api(engine: Engine, client: Client, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API app in-process, on the test's engine, Temporal client and settings (a module's `settings`
    fixture decides its task queue and secrets)."""
    app = create_app(settings, engine=engine, client=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield http
