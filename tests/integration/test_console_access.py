"""Who may use the console, over HTTP on both databases: every page needs a session, sign-in limits failures,
sessions end (expiry, sign-out, password reset, a disabled user), forms need their CSRF token, redirects stay
on the site, and a notice can be marked read only by its addressee. (The browser journeys are in tests/browser.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from core.config import Settings
from core.db import unit_of_work
from entrypoints.api.app import create_app
from entrypoints.console.account_routes import account_router
from entrypoints.console.admin_routes import admin_router
from entrypoints.console.away_routes import away_router
from entrypoints.console.cockpit_routes import cockpit_router
from entrypoints.console.finance_routes import finance_router
from entrypoints.console.money_routes import money_router
from entrypoints.console.ops_routes import ops_router
from entrypoints.console.order_routes import order_router
from entrypoints.console.routes import console_router
from models.status import Role
from models.tables import LoginFailure, Notification, WebSession
from services.accounts import MAX_FAILURES, set_disabled, set_password
from services.users import add_user
from tests.support.read_model import add_order

PASSWORD = "correct horse battery"
OPEN_PAGES = {"/console/sign-in", "/console/language"}  # before anyone has signed in


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with no Temporal client (these pages do not need one)."""
    app = create_app(settings, engine=engine)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as http:
        yield http


def make_user(engine: Engine, name: str, role: Role = Role.FINANCE) -> str:
    """The user, with PASSWORD for the console; returns their API token."""
    with unit_of_work(engine) as session:
        token = add_user(session, name, role)
        session.flush()
        set_password(session, name, PASSWORD)
    return token


async def sign_in(
    web: httpx.AsyncClient, name: str, password: str = PASSWORD, next: str = "/console"
) -> httpx.Response:
    form_page = await web.get("/console/sign-in")
    token = re.search(r'name="form_token" value="([^"]+)"', form_page.text)
    assert token is not None
    return await web.post(
        "/console/sign-in", data={"username": name, "password": password, "form_token": token[1], "next": next}
    )


def staff_routes() -> list[APIRoute]:
    """Every console route that needs a session (the mailed links' pages, /console/approve and /track, do not)."""
    routers = (
        console_router(),
        order_router(),
        finance_router(),
        money_router(),
        ops_router(),
        admin_router(),
        away_router(),
        account_router(),
        cockpit_router(),
    )
    return [r for router in routers for r in router.routes if isinstance(r, APIRoute)]


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found[1]


async def test_every_console_page_sends_a_stranger_to_the_sign_in(web: httpx.AsyncClient) -> None:
    routes = staff_routes()
    asked = 0
    for route in routes:
        if route.path in OPEN_PAGES:
            continue
        path = route.path.replace("{order_no}", "SO-1").replace("{notice_id}", "1").replace("{name}", "fay")
        path = path.replace("{task_id}", "1").replace("{run_id}", "r1")
        path = path.replace("{pick_list_id}", "1").replace("{requisition_id}", "1")
        path = path.replace("{invoice_no}", "OF-2026-000001").replace("{line_id}", "1")
        path = path.replace("{slug}", "fulfilment").replace("{kpi_id}", "sales_amount")
        for method in route.methods or ():
            answer = await web.request(method, path, data={"csrf": "x"})
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/console/sign-in?next="), answer.headers
            asked += 1
    assert asked >= 5
    polled = await web.get("/console/inbox/live", headers={"HX-Request": "true"})  # the live inbox's poll
    assert polled.status_code == 204 and polled.headers["HX-Redirect"].startswith("/console/sign-in")


async def test_a_signed_in_session_is_an_httponly_cookie_and_ends_at_sign_out(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "fay")
    answer = await sign_in(web, "fay")
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("of_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    home = await web.get("/console")
    assert home.status_code == 200 and "fay" in home.text
    assert home.headers["content-security-policy"].startswith("default-src 'self'")
    with Session(engine) as session:
        [stored] = session.exec(select(WebSession)).all()
    assert stored.token_hash not in cookie  # only the token's hash is stored
    out = await web.post("/console/sign-out", data={"csrf": csrf_of(home)})
    assert out.status_code == 303
    with Session(engine) as session:
        assert session.exec(select(WebSession)).all() == []
    assert (await web.get("/console")).status_code == 303


async def test_forms_without_their_csrf_token_change_nothing(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "fay")
    await sign_in(web, "fay")
    posts = [r.path for r in staff_routes() if "POST" in (r.methods or ())]
    posts.remove("/console/sign-in")
    assert len(posts) >= 5
    for path in posts:  # every form, not only one
        concrete = path.replace("{order_no}", "SO-1").replace("{notice_id}", "1").replace("{pick_list_id}", "1")
        concrete = concrete.replace("{task_id}", "1").replace("{run_id}", "r1").replace("{line_id}", "1")
        concrete = concrete.replace("{requisition_id}", "1").replace("{name}", "fay").replace("{substitution_id}", "1")
        for data in ({}, {"csrf": "guess"}, {"csrf": "gueß"}):  # non-ASCII too: refused, not a 500
            assert (await web.post(concrete, data=data)).status_code == 403, (path, data)
    assert (await web.get("/console")).status_code == 200  # still signed in
    # The sign-in form has its own token (there is no session yet): a post from elsewhere is refused.
    bare = await web.post("/console/sign-in", data={"username": "fay", "password": PASSWORD})
    assert bare.status_code == 403


async def test_failed_sign_ins_are_limited_per_user(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "fay")
    for _ in range(MAX_FAILURES):
        wrong = await sign_in(web, "fay", "not the password")
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    locked = await sign_in(web, "fay")  # even the right password, until the window passes
    assert locked.status_code == 401 and "too many failed sign-ins" in locked.text
    unknown = await sign_in(web, "nobody", "whatever")
    assert unknown.status_code == 401 and "wrong user name or password" in unknown.text  # same words
    with Session(engine) as session:
        failures = session.exec(select(LoginFailure).where(LoginFailure.user_name == "fay")).all()
    # every attempt counts, the refused one with the right password too (parallel attempts cannot slip through)
    assert len(failures) == MAX_FAILURES + 1 and {f.address for f in failures} == {"10.1.2.3"}
    with unit_of_work(engine) as session:  # the window passes
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        session.exec(update(LoginFailure).where(col(LoginFailure.user_name) == "fay").values(at=an_hour_ago))
    assert (await sign_in(web, "fay")).status_code == 303


async def test_a_session_ends_when_it_expires_the_password_is_reset_or_the_user_is_disabled(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    token = make_user(engine, "fay")
    await sign_in(web, "fay")
    with unit_of_work(engine) as session:
        session.exec(update(WebSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    expired = await web.get("/console")
    assert expired.status_code == 303 and "ended=true" in expired.headers["location"]

    await sign_in(web, "fay")
    with unit_of_work(engine) as session:
        set_password(session, "fay", "another long password")
    assert (await web.get("/console")).status_code == 303
    assert (await sign_in(web, "fay")).status_code == 401  # the old password is gone

    await sign_in(web, "fay", "another long password")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await web.get("/products", headers=bearer)).status_code == 200
    with unit_of_work(engine) as session:
        set_disabled(session, "fay", True)
    assert (await web.get("/console")).status_code == 303
    assert (await sign_in(web, "fay", "another long password")).status_code == 401
    assert (await web.get("/products", headers=bearer)).status_code == 401  # nor through the API


async def test_after_sign_in_the_console_only_sends_people_to_its_own_pages(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "fay")
    for elsewhere in ("https://evil.example/", "//evil.example/console", "/docs"):
        answer = await sign_in(web, "fay", next=elsewhere)
        assert answer.headers["location"] == "/console", elsewhere
    back = await sign_in(web, "fay", next="/console?x=1")
    assert back.headers["location"] == "/console?x=1"


async def test_only_someone_who_may_decide_can_post_a_decision(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "sam", Role.SALES)
    await sign_in(web, "sam")
    home = await web.get("/console")
    form = {"csrf": csrf_of(home), "decision": "approve", "level": "1", "comment": ""}
    add_order(engine, "SO-OTHER-REP", rep="bob", sku="SKU-1001")
    for order_no in ("SO-NONE", "SO-OTHER-REP"):  # nothing of an order that is not hers, nor whether it exists
        answer = await web.post(f"/console/approvals/{order_no}", data=form)
        assert answer.status_code == 404 and "There is no such order." in answer.text


async def test_a_notice_is_read_only_by_its_addressee(web: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "fay")
    make_user(engine, "oz", Role.OPS)
    with unit_of_work(engine) as session:
        for name in ("fay", "oz"):
            session.add(
                Notification(
                    key=f"SO-9:approval_needed:internal:{name}", order_no="SO-9", kind="approval_needed",
                    channel="internal", recipient=name, subject=f"for {name}", body="SO-9 awaits you",
                )
            )  # fmt: skip
    with Session(engine) as session:
        ids = {n.recipient: n.id for n in session.exec(select(Notification)).all()}
    await sign_in(web, "oz")
    home = await web.get("/console")
    assert "for oz" in home.text and "for fay" not in home.text
    assert (await web.post(f"/console/notices/{ids['fay']}/read", data={"csrf": csrf_of(home)})).status_code == 303
    assert (await web.post(f"/console/notices/{ids['oz']}/read", data={"csrf": csrf_of(home)})).status_code == 303
    with Session(engine) as session:
        read = {n.recipient: n.read_at is not None for n in session.exec(select(Notification)).all()}
    assert read == {"fay": False, "oz": True}
