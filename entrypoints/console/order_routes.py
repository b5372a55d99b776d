"""The console's order commands for the people who sell: submit an order through a form, cancel one before it
leaves the warehouse. Both go through the API's commands (services.intake.take_order, order_commands.cancel)
with the API's rules: who may (entrypoints.api.auth SUBMITTERS, CANCELLERS), a sales rep only their own."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import read_only
from entrypoints.api.auth import CANCELLERS, CUSTOMER_READERS, SUBMITTERS
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.order_form import (
    LINE_ROWS,
    ORDER_TYPES,
    PAYMENT_METHODS,
    SHIP_FIELDS,
    choices,
    new_order_no,
    read_form,
)
from entrypoints.console.web import EngineDep, FormText, Me, check_csrf, not_found, now, page, workflow_client
from models.status import CANCELLABLE_STATUSES, OrderStatus, Role
from models.tables import SalesOrder
from services import order_commands
from services.accounts import SignedIn
from services.errors import CommandError, OrderConflict
from services.intake import take_order
from services.links import TRACK_PATH, tracking_token
from services.queries.order_list import may_see
from services.queries.order_page import order_page

SUBMITTER_ROLES = {role.value for role in SUBMITTERS}
CANCELLER_ROLES = {role.value for role in CANCELLERS}
CREDIT_READERS = {role.value for role in CUSTOMER_READERS} | {Role.ADMIN.value}  # the order page's credit picture


def _form_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    form: dict[str, str],
    errors: dict[str, str] | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        options = choices(session)
    context = {
        "me": me,
        "form": form,
        "errors": errors or {},
        "options": options,
        "rows": range(1, LINE_ROWS + 1),
        "ship_fields": SHIP_FIELDS,
        "payment_methods": PAYMENT_METHODS,
        "order_types": ORDER_TYPES,
        "choose_rep": me.user.role != Role.SALES.value,
    }
    return page(request, "order_new.html", context, code)


def may_cancel(role: str, user: str, status_: str, sales_rep: str) -> bool:
    """Whether the cancel form is offered (the workflow still decides: a parcel that has left cannot be)."""
    if status_ not in CANCELLABLE_STATUSES or role not in CANCELLER_ROLES:
        return False
    return role != Role.SALES.value or sales_rep == user


def _order_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    order_no: str,
    *,
    flash: str = "",
    cancel_error: str = "",
    reason: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        # Someone who may not see the order learns nothing, not even that it exists.
        if not may_see(session, order_no, me.user.name, me.user.role):
            return not_found(request, "no_such_order")
        view = order_page(session, order_no, with_credit=me.user.role in CREDIT_READERS)
    settings = settings_of(request)
    token = tracking_token(settings.link_secret, order_no, now() + settings.tracking_link_lifetime)
    context = {
        "me": me,
        "o": view,
        "temporal_ui": settings.workflow_ui_url(view["workflow_id"]),
        "flash": flash,
        "tracking_link": settings.public_url(TRACK_PATH + token),
        "can_cancel": may_cancel(me.user.role, me.user.name, view["status"], view["sales_rep"]),
        "cancel_error": cancel_error,
        "reason": reason,
    }
    return page(request, "order.html", context, code)


async def _registered(engine: EngineDep, order_no: str, *, status_: str = "", within: float = 5.0) -> bool:
    """Whether the read model has the order (in `status_`, if given) within a few seconds: the workflow's record
    step writes it a moment after the command returns, and the page shown next reads the read model."""
    deadline = time.monotonic() + within
    while True:
        with read_only(engine) as session:
            order = session.get(SalesOrder, order_no)
            if order is not None and (not status_ or order.status == status_):
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


async def cancel_with_reason(request: Request, engine: EngineDep, order_no: str, reason: str, by: str) -> str:
    """Cancel through the API's command and wait a moment for the read model to show it: "" when done, else why
    not (no reason given; it has left the warehouse since the page was shown, say)."""
    if not reason.strip():
        return translator(language_of(request))("reason_required")
    try:
        client = await workflow_client(request)
        await order_commands.cancel(client, order_no, reason=reason.strip(), by=by)
    except CommandError as exc:
        return str(exc)
    await _registered(engine, order_no, status_=OrderStatus.CANCELLED.value)
    return ""


def order_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/orders/new", response_class=HTMLResponse)
    def new_order(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        if me.user.role not in SUBMITTER_ROLES:
            return not_found(request, "not_yours")
        return _form_page(request, engine, me, {"order_no": new_order_no(now()), "sales_rep": me.user.name})

    @router.post("/orders/new", response_model=None)
    async def submit_order(request: Request, me: Me, engine: EngineDep) -> Response:
        raw = await request.form()
        form = {key: value for key, value in raw.items() if isinstance(value, str) and len(value) <= 500}
        check_csrf(me, form.get("csrf", ""))
        if me.user.role not in SUBMITTER_ROLES:
            return not_found(request, "not_yours")
        settings = settings_of(request)
        with read_only(engine) as session:
            result = read_form(
                session, form, user=me.user.name, role=me.user.role, price_tolerance=settings.price_tolerance
            )
        if result.order is None:
            return _form_page(request, engine, me, form, result.errors, status.HTTP_422_UNPROCESSABLE_CONTENT)
        try:
            client = await workflow_client(request)
            answer = await take_order(
                client, engine, result.order, settings.task_queue, user=me.user.name, idempotency_key=None
            )
        except OrderConflict:  # the number was taken by another order meanwhile: a new one, the form again
            form["order_no"] = new_order_no(now())
            errors = {"form": translator(language_of(request))("order_no_taken")}
            return _form_page(request, engine, me, form, errors, status.HTTP_409_CONFLICT)
        except CommandError as exc:
            return _form_page(request, engine, me, form, {"form": str(exc)}, status.HTTP_409_CONFLICT)
        # The order page reads the read model, which the workflow's first step writes a moment later.
        if await _registered(engine, answer.order_no):
            return RedirectResponse(f"/console/orders/{quote(answer.order_no)}?submitted=1", status.HTTP_303_SEE_OTHER)
        return RedirectResponse(f"/console/orders?q={quote(answer.order_no)}", status.HTTP_303_SEE_OTHER)

    @router.get("/orders/{order_no}", response_class=HTMLResponse)
    def order(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        dispatched: Annotated[str, Query(max_length=64)] = "",
        submitted: bool = False,
        cancelled: bool = False,
    ) -> HTMLResponse:
        t = translator(language_of(request))
        flash = (
            f"{dispatched} {t('dispatched_flash')}"
            if dispatched
            else t("submitted_flash")
            if submitted
            else t("cancelled_flash")
            if cancelled
            else ""
        )
        return _order_page(request, engine, me, order_no, flash=flash)

    @router.post("/orders/{order_no}/cancel", response_model=None)
    async def cancel_order(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[FormText, Form(max_length=500)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        with read_only(engine) as session:
            order = session.get(SalesOrder, order_no)
            visible = may_see(session, order_no, me.user.name, me.user.role)
        if order is None or not visible or me.user.role not in CANCELLER_ROLES:
            return not_found(request, "no_such_order")
        if me.user.role == Role.SALES.value and order.sales_rep != me.user.name:
            return not_found(request, "no_such_order")
        error = await cancel_with_reason(request, engine, order_no, reason, me.user.name)
        if error:
            conflict = status.HTTP_409_CONFLICT if reason.strip() else status.HTTP_422_UNPROCESSABLE_CONTENT
            return _order_page(request, engine, me, order_no, cancel_error=error, reason=reason, code=conflict)
        return RedirectResponse(f"/console/orders/{quote(order_no)}?cancelled=1", status.HTTP_303_SEE_OTHER)

    return router
