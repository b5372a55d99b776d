"""The console's pages at /console: sign-in, the to-do inbox (home), decisions, staff notices.

Every page needs a signed-in session (cookie `of_session`, HttpOnly, SameSite=Lax, Secure over https); every form
carries the session's CSRF token; every action calls the same application commands as the API (services/).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.db import read_only, unit_of_work
from entrypoints.api.deps import settings_of
from entrypoints.console.account_routes import account_router
from entrypoints.console.admin_routes import admin_router
from entrypoints.console.automation_routes import automation_router
from entrypoints.console.away_routes import away_router
from entrypoints.console.cockpit_routes import cockpit_router
from entrypoints.console.finance_routes import FINANCE_ROLES, finance_router
from entrypoints.console.i18n import LANGUAGE_COOKIE, LANGUAGES, language_of, translator
from entrypoints.console.mail_links import mail_link_router
from entrypoints.console.money_routes import money_router
from entrypoints.console.ops_routes import OPS_ROLES, ops_router
from entrypoints.console.order_routes import SUBMITTER_ROLES, order_router
from entrypoints.console.web import (
    FORM_COOKIE,
    HERE,
    SESSION_COOKIE,
    EngineDep,
    FormExpired,
    FormText,
    Me,
    NotSignedIn,
    RowId,
    TemporalDown,
    check_csrf,
    check_form_token,
    not_found,
    now,
    page,
    safe_next,
    secure,
    sign_in_form,
    unavailable,
    workflow_client,
)
from integrations.carriers.registry import KNOWN_CARRIERS
from models.status import OrderStatus, Role
from models.tables import SalesOrder, Warehouse
from models.text import storable
from services import order_commands
from services.accounts import SESSION_LIFETIME, SignedIn, SignInRefused, sign_in, sign_out
from services.errors import CommandError, Refused
from services.picking import mark_picked
from services.queries.finance import finance_counts
from services.queries.inbox import (
    INBOX_LIMIT,
    ApprovalTodo,
    approval_count,
    approval_todos,
    decidable_levels,
    notices,
    unread_count,
)
from services.queries.ops import ops_exception_count
from services.queries.order_list import OrderFilter, as_query, may_see, order_list
from services.queries.pick_lists import handled_warehouses, open_pick_lists, pick_list_page
from services.staff_notices import mark_read
from services.substitutes import StandIn, acting_role, standing_for
from services.tasks import mark_done, open_tasks
from workflows.contract import ErrorType

STATUSES = [status.value for status in OrderStatus]
APPROVER_ROLES = {Role.FINANCE.value, Role.FINANCE_DIRECTOR.value}  # their inbox always shows its approvals


@dataclass(frozen=True)
class Covering:
    """An absent approver's to-dos in their substitute's inbox: the levels the substitute cannot decide anyway."""

    stand_in: StandIn
    count: int
    todos: list[ApprovalTodo]


def _covering(session: Session, me: SignedIn, zone: ZoneInfo) -> list[Covering]:
    own = set(decidable_levels(me.user.role))
    found = []
    for stand_in in standing_for(session, me.user.name, now(), zone):
        levels = [level for level in decidable_levels(stand_in.principal_role) if level not in own]
        count = approval_count(session, stand_in.principal_role, levels=levels) if levels else 0
        todos = approval_todos(session, stand_in.principal_role, levels=levels) if count else []
        found.append(Covering(stand_in, count, todos))
    return found


def _inbox_context(request: Request, engine: Engine, me: SignedIn) -> dict[str, Any]:
    settings = settings_of(request)
    with read_only(engine) as session:
        waiting = approval_count(session, me.user.role)  # any level the user's role may decide
        approvals = approval_todos(session, me.user.role) if waiting else []
        covering = _covering(session, me, settings.business_zone)
        staff = notices(session, me.user.name)
        unread = unread_count(session, me.user.name)
        picks = open_pick_lists(session, me.user.name, me.user.role)
        tasks = open_tasks(session, me.user.name, me.user.role)
        handles_picks = handled_warehouses(session, me.user.name, me.user.role) != set()
        money = finance_counts(session) if me.user.role in FINANCE_ROLES else None
        exceptions = None
        if me.user.role in OPS_ROLES:
            quiet = settings_of(request).parcel_quiet_after
            exceptions = ops_exception_count(session, now(), quiet_after=quiet)
    return {
        "money": money,
        "exceptions": exceptions,
        "pick_todos": picks,
        "tasks": tasks,
        "handles_picks": handles_picks,
        "me": me,
        "approvals": approvals,
        # credit holds are approvals (counted in `waiting`); payments and refunds are finance's other to-dos
        "badge": waiting
        + sum(c.count for c in covering)
        + unread
        + len(picks)
        + len(tasks)
        + (money.payments + money.refunds if money else 0)
        + (exceptions or 0),
        "covering": covering,
        "waiting": waiting,
        "staff_notices": staff,
        "unread": unread,
        "is_approver": me.user.role in APPROVER_ROLES or waiting > 0,
    }


def _pick_list_page(
    request: Request,
    engine: Engine,
    me: SignedIn,
    pick_list_id: RowId,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        found = pick_list_page(session, pick_list_id, me.user.name, me.user.role)
    if found is None:  # not theirs: as if it did not exist
        return not_found(request, "no_such_pick_list")
    context = {
        "me": me,
        "p": found,
        "carriers": sorted(KNOWN_CARRIERS),
        "errors": errors or {},
        "form": form or {},
    }
    return page(request, "pick_list.html", context, code)


def _day(text: str, field: str, errors: dict[str, str]) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = "a date like 2026-12-01"
        return None


LEVEL = re.compile(r"[0-9]{1,6}")  # an approval level as the inbox's checkboxes carry it (ASCII digits only)


class NotVisible(Exception):
    """The person may not know the order exists (so may not decide it)."""


async def _decide_one(
    request: Request,
    engine: Engine,
    me: SignedIn,
    order_no: str,
    decision: str,
    comment: str,
    level: int,
    on_behalf_of: str = "",
) -> str | None:
    """Decide the level the person was shown, through the API's command: None when done, else why not. With
    `on_behalf_of`, as the absent approver's substitute: with that approver's role, if the substitution stands."""
    role = me.user.role
    if on_behalf_of:
        acting = await asyncio.to_thread(acting_role, engine, me.user.name, on_behalf_of, now())
        role = acting or ""
    with read_only(engine) as session:
        order = session.get(SalesOrder, order_no)
        visible = bool(role) and may_see(session, order_no, me.user.name, role)
    # Someone who could never decide this order learns nothing about it (as on the order page).
    if order is None or not visible or not decidable_levels(role):
        raise NotVisible(order_no)
    if decision not in ("approve", "reject"):
        return "choose approve or reject"
    if order.awaiting_level != level or order.awaiting_role is None:
        return translator(language_of(request))("moved_on")
    try:
        client = await workflow_client(request)
        await order_commands.decide(
            client,
            engine,
            order_no,
            user=me.user.name,
            decision=decision,
            comment=comment.strip(),
            secret=settings_of(request).decision_secret,
            role=me.user.role,
            level=level,
            on_behalf_of=on_behalf_of,
        )
    except CommandError as exc:
        return str(exc)
    return None


def console_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/sign-in", response_class=HTMLResponse)
    def sign_in_page(request: Request, next: str = "/console", ended: bool = False) -> HTMLResponse:
        return sign_in_form(request, {"next": safe_next(next), "ended": ended})

    @router.post("/sign-in", response_model=None)
    def sign_in_submit(
        request: Request,
        engine: EngineDep,
        username: Annotated[str, Form(max_length=64)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        form_token: Annotated[str, Form(max_length=100)] = "",
        next: Annotated[str, Form(max_length=500)] = "/console",
    ) -> Response:
        check_form_token(request, form_token)
        address = request.client.host if request.client else ""
        try:
            token, _ = sign_in(engine, username.strip(), password, address=address, now=now())
        except SignInRefused as exc:
            context = {"next": safe_next(next), "error": str(exc), "username": username}
            return sign_in_form(request, context, status.HTTP_401_UNAUTHORIZED)
        response = RedirectResponse(safe_next(next), status.HTTP_303_SEE_OTHER)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=secure(request),
            path="/console",
        )
        response.delete_cookie(FORM_COOKIE, path="/")
        return response

    @router.post("/sign-out")
    def sign_out_submit(request: Request, me: Me, engine: EngineDep, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(me, csrf)
        sign_out(engine, request.cookies.get(SESSION_COOKIE, ""), now=now())
        response = RedirectResponse("/console/sign-in", status.HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    @router.get("/language")
    def switch_language(request: Request, to: str = "en", back: str = "/console") -> Response:
        response = RedirectResponse(safe_next(back), status.HTTP_303_SEE_OTHER)
        if to in LANGUAGES:
            one_year = 365 * 24 * 3600
            response.set_cookie(LANGUAGE_COOKIE, to, max_age=one_year, samesite="lax", path="/")
        return response

    @router.get("", response_class=HTMLResponse)
    def inbox(request: Request, me: Me, engine: EngineDep, done: str = "", decision: str = "") -> HTMLResponse:
        context = _inbox_context(request, engine, me)
        context["flash"] = (done, decision) if done and decision in ("approved", "rejected") else None
        return page(request, "inbox.html", context)

    @router.get("/inbox/live", response_class=HTMLResponse)
    def inbox_live(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        """The inbox's lists and badge, polled by the page every 4 s (htmx)."""
        return page(request, "_inbox_lists.html", _inbox_context(request, engine, me))

    @router.post("/approvals/bulk", response_class=HTMLResponse)
    async def decide_many(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        """Approve the ticked orders, each validated and signed on its own (as if approved one by one)."""
        form = await request.form()
        check_csrf(me, str(form.get("csrf", "")))
        comment = str(form.get("comment", ""))[:2000]
        t = translator(language_of(request))
        approved: list[str] = []
        refused: list[tuple[str, str]] = []
        picks = [str(picked).rpartition("|") for picked in form.getlist("orders")[:INBOX_LIMIT]]
        try:
            storable(comment)
        except ValueError as exc:  # decide nothing: every ticked order is refused for the comment
            refused = [(order_no, f"{t('bulk_comment')}: {exc}") for order_no, _, _ in picks if order_no]
            picks = []
        for order_no, _, level in picks:
            if not order_no or not LEVEL.fullmatch(level):
                continue
            try:
                error = await _decide_one(request, engine, me, order_no, "approve", comment, int(level))
            except NotVisible:
                error = t("no_such_order")
            if error is None:
                approved.append(order_no)
            else:
                refused.append((order_no, error))
        context = _inbox_context(request, engine, me)
        context["bulk"] = {"approved": approved, "refused": refused, "none": not approved and not refused}
        return page(request, "inbox.html", context, status.HTTP_409_CONFLICT if refused else status.HTTP_200_OK)

    @router.post("/approvals/{order_no}", response_model=None)
    async def decide(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        decision: Annotated[str, Form()] = "",
        comment: Annotated[FormText, Form(max_length=2000)] = "",
        level: Annotated[int, Form(ge=0, le=999_999)] = 0,
        on_behalf_of: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        try:
            error = await _decide_one(request, engine, me, order_no, decision, comment, level, on_behalf_of)
        except NotVisible:
            return not_found(request, "no_such_order")
        if error is None:
            done = "approved" if decision == "approve" else "rejected"
            return RedirectResponse(f"/console?done={quote(order_no)}&decision={done}", status.HTTP_303_SEE_OTHER)
        context = _inbox_context(request, engine, me)
        context["errors"] = {order_no: error}
        context["comments"] = {order_no: comment}
        return page(request, "inbox.html", context, status.HTTP_409_CONFLICT)

    @router.get("/orders", response_class=HTMLResponse)
    def orders(
        request: Request,
        me: Me,
        engine: EngineDep,
        q: Annotated[str, Query(max_length=100)] = "",
        status_: Annotated[str, Query(alias="status", max_length=32)] = "",
        channel: Annotated[str, Query(max_length=64)] = "",
        warehouse: Annotated[str, Query(max_length=32)] = "",
        from_: Annotated[str, Query(alias="from", max_length=10)] = "",
        to: Annotated[str, Query(max_length=10)] = "",
        page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        errors: dict[str, str] = {}
        flt = OrderFilter(
            text=q,
            status=status_ if status_ in STATUSES else "",
            channel=channel,
            warehouse=warehouse,
            created_from=_day(from_, "from", errors),
            created_to=_day(to, "to", errors),
            page=page_no,
        )
        with read_only(engine) as session:
            found = order_list(session, flt, name=me.user.name, role=me.user.role)
            warehouses = [w.code for w in session.exec(select(Warehouse).order_by(col(Warehouse.code))).all()]
        context = {
            "me": me,
            "found": found,
            "flt": flt,
            "errors": errors,
            "statuses": STATUSES,
            "warehouses": warehouses,
            "page_url": lambda **changes: "/console/orders?" + urlencode(as_query(flt, **changes)),
            "may_submit": me.user.role in SUBMITTER_ROLES,
        }
        return page(request, "orders.html", context, status.HTTP_422_UNPROCESSABLE_CONTENT if errors else 200)

    @router.get("/pick-lists/{pick_list_id}", response_class=HTMLResponse)
    def pick_list(request: Request, pick_list_id: RowId, me: Me, engine: EngineDep) -> HTMLResponse:
        return _pick_list_page(request, engine, me, pick_list_id)

    @router.post("/pick-lists/{pick_list_id}/picked", response_model=None)
    def picked(
        request: Request, pick_list_id: RowId, me: Me, engine: EngineDep, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(me, csrf)
        with read_only(engine) as session:
            found = pick_list_page(session, pick_list_id, me.user.name, me.user.role)
        if found is None:
            return not_found(request, "no_such_pick_list")
        with unit_of_work(engine) as session:
            still_open = mark_picked(session, pick_list_id, me.user.name, now())
        if not still_open:
            errors = {"picked": translator(language_of(request))("list_closed")}
            return _pick_list_page(request, engine, me, pick_list_id, errors=errors, code=status.HTTP_409_CONFLICT)
        return RedirectResponse(f"/console/pick-lists/{pick_list_id}", status.HTTP_303_SEE_OTHER)

    @router.post("/pick-lists/{pick_list_id}/dispatch", response_model=None)
    async def dispatch(
        request: Request,
        pick_list_id: RowId,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        carrier: Annotated[FormText, Form(max_length=32)] = "",
        tracking_no: Annotated[FormText, Form(max_length=64)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        with read_only(engine) as session:
            found = pick_list_page(session, pick_list_id, me.user.name, me.user.role)
        if found is None:
            return not_found(request, "no_such_pick_list")
        t = translator(language_of(request))
        errors: dict[str, str] = {}
        number = tracking_no.strip()
        if carrier not in KNOWN_CARRIERS:
            errors["carrier"] = t("choose_carrier")
        if not re.fullmatch(r"[A-Za-z0-9-]{4,40}", number):
            errors["tracking_no"] = t("tracking_format")
        if not errors:
            try:
                client = await workflow_client(request)
                await order_commands.dispatch(
                    client,
                    found["order_no"],
                    warehouse=found["warehouse"],
                    carrier=carrier,
                    tracking_no=number,
                    by=me.user.name,
                )
            except Refused as exc:
                # A number already used, a carrier the worker does not know, an order that moved on: said where it
                # belongs, and nothing changed.
                errors["carrier" if exc.kind == ErrorType.INVALID else "tracking_no"] = str(exc)
            except CommandError as exc:
                errors["tracking_no"] = str(exc)
        if errors:
            form = {"carrier": carrier, "tracking_no": tracking_no}
            return _pick_list_page(
                request, engine, me, pick_list_id, errors=errors, form=form, code=status.HTTP_409_CONFLICT
            )
        return RedirectResponse(
            f"/console/orders/{quote(found['order_no'])}?dispatched={quote(number)}", status.HTTP_303_SEE_OTHER
        )

    @router.post("/tasks/{task_id}/done")
    def task_done(task_id: RowId, me: Me, engine: EngineDep, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(me, csrf)
        with unit_of_work(engine) as session:
            mark_done(session, task_id, user=me.user.name, role=me.user.role, now=now())
        return RedirectResponse("/console#tasks", status.HTTP_303_SEE_OTHER)

    @router.post("/notices/{notice_id}/read")
    def read_notice(notice_id: RowId, me: Me, engine: EngineDep, csrf: Annotated[str, Form()] = "") -> Response:
        check_csrf(me, csrf)
        with unit_of_work(engine) as session:
            mark_read(session, me.user.name, notice_id, now())
        return RedirectResponse("/console#notices", status.HTTP_303_SEE_OTHER)

    return router


FORM_MAX_BYTES = 6_000_000  # the largest console form: a 5 MB statement and its multipart framing


def mount_console(app: FastAPI) -> None:
    """The console's pages, its static files (vendored, no CDN) and what its refusals look like."""
    app.include_router(order_router())  # first: /console/orders/new is not an order number
    app.include_router(finance_router())
    app.include_router(money_router())
    app.include_router(ops_router())
    app.include_router(admin_router())
    app.include_router(automation_router())
    app.include_router(away_router())
    app.include_router(account_router())
    app.include_router(cockpit_router())
    app.include_router(console_router())
    app.include_router(mail_link_router())
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.middleware("http")
    async def cap_form_bodies(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """A console form is refused before it is read when it is larger than any form needs (a bank statement is
        at most 5 MB): the body is never spooled, whoever sends it, signed in or not. Browsers state its length."""
        if request.method == "POST" and request.url.path.startswith("/console"):
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > FORM_MAX_BYTES:
                return page(request, "refused.html", {"message_key": "too_large"}, status.HTTP_413_CONTENT_TOO_LARGE)
        return await call_next(request)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        target = f"/console/sign-in?next={quote(exc.next_url)}" + ("&ended=true" if exc.ended else "")
        response: Response = RedirectResponse(target, status.HTTP_303_SEE_OTHER)
        if request.headers.get("hx-request"):  # the live inbox's poll: the whole page goes to the sign-in
            response = Response(status_code=status.HTTP_204_NO_CONTENT, headers={"HX-Redirect": target})
        if exc.ended:
            response.delete_cookie(SESSION_COOKIE, path="/console")
        return response

    @app.exception_handler(FormExpired)
    async def form_expired(request: Request, _exc: FormExpired) -> Response:
        return page(request, "refused.html", {"message_key": "form_expired"}, status.HTTP_403_FORBIDDEN)

    @app.exception_handler(TemporalDown)
    async def temporal_down(request: Request, _exc: TemporalDown) -> Response:
        return unavailable(request)
