"""To-dos automations open, in the console inbox of the role or user they are for, done there by whoever holds
them; somebody else's to-do cannot be done by a forged form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from core.config import Settings
from core.db import read_only, unit_of_work
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import Task
from tests.integration.test_console_access import csrf_of, make_user, sign_in


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def add_task(engine: Engine, key: str, title: str, **fields: object) -> int:
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        task = Task(key=key, title=title, source="big-order-director-todo", created_at=now, **fields)  # type: ignore[arg-type]
        session.add(task)
        session.flush()
        assert task.id is not None
        return task.id


async def test_a_role_sees_its_todos_and_marks_one_done(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "dora", Role.FINANCE_DIRECTOR)
    make_user(engine, "fred", Role.FINANCE)
    due = datetime.now(UTC) + timedelta(days=1)
    mine = add_task(engine, "t1", "Look at SO-1: 12,400.00 CNY", role="finance_director", order_no="SO-1", due_at=due)
    other = add_task(engine, "t2", "Check the credit of C-9", role="finance")

    await sign_in(web, "dora")
    inbox = await web.get("/console")
    assert inbox.status_code == 200
    assert "Look at SO-1: 12,400.00 CNY" in inbox.text and f'id="task-{mine}"' in inbox.text
    assert "Check the credit of C-9" not in inbox.text  # finance's, not the director's
    csrf = csrf_of(inbox)

    forged = await web.post(f"/console/tasks/{other}/done", data={"csrf": csrf})
    assert forged.status_code == 303
    done = await web.post(f"/console/tasks/{mine}/done", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/console#tasks"
    without_csrf = await web.post(f"/console/tasks/{other}/done", data={"csrf": "nope"})
    assert without_csrf.status_code in (400, 403)
    with read_only(engine) as session:
        finished, untouched = session.get(Task, mine), session.get(Task, other)
        assert finished is not None and (finished.state, finished.done_by) == ("done", "dora")
        assert untouched is not None and untouched.state == "open"
    assert "Look at SO-1" not in (await web.get("/console")).text
