"""The admin's pages over HTTP on both databases: only an admin opens them; adding a user shows their password
and token once and they can sign in; role, contacts, warehouses and notice channels change together or not at
all (bad input beside its field); a reset password ends the old one; a disabled user is out; nobody locks
themselves out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from core.config import Settings
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import User
from services.users import warehouses_of
from tests.integration.test_console_access import csrf_of, make_user, sign_in


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def shown(page: httpx.Response, what: str) -> str:
    found = re.search(rf'id="new-{what}">([^<]+)<', page.text)
    assert found is not None, page.text[:500]
    return found[1]


async def sign_out(web: httpx.AsyncClient) -> None:
    home = await web.get("/console")
    await web.post("/console/sign-out", data={"csrf": csrf_of(home)})


async def test_an_admin_adds_changes_resets_and_disables_users(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "ada", Role.ADMIN)
    make_user(engine, "sue", Role.SALES)
    await sign_in(web, "sue")
    assert (await web.get("/console/admin")).status_code == 404
    await sign_out(web)

    await sign_in(web, "ada")
    admin = await web.get("/console/admin")
    assert admin.status_code == 200 and 'id="user-fiona"' in admin.text
    csrf = csrf_of(admin)
    bad = await web.post("/console/admin/users", data={"csrf": csrf, "name": "wu wei", "role": "warehouse",
                                                       "email": "not-an-address", "warehouse": "WH-SH"})  # fmt: skip
    assert bad.status_code == 422 and 'id="email-error"' in bad.text and 'id="name-error"' in bad.text
    with Session(engine) as session:
        assert session.get(User, "wu wei") is None
    wu = {"csrf": csrf, "name": "wu", "role": "warehouse", "email": "wu@staff.orderflow.test", "warehouse": "WH-SH"}
    added = await web.post("/console/admin/users", data=wu)
    assert added.status_code == 201
    password, token = shown(added, "password"), shown(added, "token")
    again = await web.post("/console/admin/users", data={"csrf": csrf, "name": "wu", "role": "sales"})
    assert again.status_code == 422 and "already exists" in again.text

    url = "/console/admin/users/wu"
    change = {"csrf": csrf, "role": "warehouse", "email": "wu@staff.orderflow.test", "phone": "",
              "warehouse": ["WH-SH", "WH-BJ"], "notify_sms": "on"}  # fmt: skip
    refused = await web.post(url, data=change)
    assert refused.status_code == 422 and 'id="notify_sms-error"' in refused.text  # no phone to text
    with Session(engine) as session:
        assert warehouses_of(session, "wu") == ["WH-SH"]  # nothing of it applied
    saved = await web.post(url, data={**change, "phone": "+86 138 0000 0009"})
    assert saved.status_code == 303
    with Session(engine) as session:
        row = session.get(User, "wu")
        assert row is not None and (row.phone, row.notify_sms, row.notify_email) == ("+86 138 0000 0009", True, False)
        assert warehouses_of(session, "wu") == ["WH-BJ", "WH-SH"]

    reset = await web.post(f"{url}/password", data={"csrf": csrf})
    new_password = shown(reset, "password")
    assert new_password != password
    disabled = await web.post(f"{url}/disabled", data={"csrf": csrf, "disabled": "true"})
    assert disabled.status_code == 303
    myself = await web.post("/console/admin/users/ada/disabled", data={"csrf": csrf, "disabled": "true"})
    assert myself.status_code == 409 and "your own admin" in myself.text
    demoted = await web.post("/console/admin/users/ada", data={"csrf": csrf, "role": "sales"})
    assert demoted.status_code == 422 and "your own admin" in demoted.text
    await sign_out(web)

    assert (await sign_in(web, "wu", new_password)).status_code == 401  # disabled
    assert (await web.get("/orders/SO-1", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    await sign_in(web, "ada")
    await web.post(f"{url}/disabled", data={"csrf": csrf_of(await web.get(url)), "disabled": "false"})
    await sign_out(web)
    assert (await sign_in(web, "wu", password)).status_code == 401  # the old password ended with the reset
    assert (await sign_in(web, "wu", new_password)).status_code == 303
