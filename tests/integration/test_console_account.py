"""A person's own page over HTTP on both databases: they see their role and contacts and choose how staff notices
reach them besides the inbox; a channel without its address on file is refused and nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine

from core.config import Settings
from core.db import read_only, unit_of_work
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import User
from tests.integration.test_console_access import csrf_of, make_user, sign_in


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def channels(engine: Engine, name: str) -> tuple[bool, bool]:
    with read_only(engine) as session:
        user = session.get(User, name)
        assert user is not None
        return user.notify_email, user.notify_sms


async def test_a_person_chooses_their_notice_channels_and_a_channel_needs_its_address(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "mia", Role.FINANCE)
    with unit_of_work(engine) as session:
        user = session.get(User, "mia")
        assert user is not None
        user.email, user.phone = "mia@staff.orderflow.test", None
        session.add(user)
    await sign_in(web, "mia")
    mine = await web.get("/console/me")
    assert mine.status_code == 200 and "mia@staff.orderflow.test" in mine.text and "finance" in mine.text
    csrf = csrf_of(mine)

    refused = await web.post("/console/me/notices", data={"csrf": csrf, "notify_email": "on", "notify_sms": "on"})
    assert refused.status_code == 422 and "mia has no phone number on file" in refused.text
    assert channels(engine, "mia") == (True, False)  # as it was

    off = await web.post("/console/me/notices", data={"csrf": csrf})  # unticked: the inbox only
    assert off.status_code == 303 and off.headers["location"] == "/console/me?saved=true"
    assert channels(engine, "mia") == (False, False)
    assert (await web.post("/console/me/notices", data={"notify_email": "on"})).status_code == 403  # no CSRF
    assert channels(engine, "mia") == (False, False)
