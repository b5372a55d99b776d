"""Ops' page, /console/ops: the exceptions (services/queries/ops.py) with the actions the API allows on them —
cancel a backordered order, book the goods receipt a purchase requisition asked for (which wakes the orders
waiting for it) — and a link to each order's page."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from core.db import read_only
from entrypoints.api.auth import CANCELLERS, RECEIVERS
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.order_routes import cancel_with_reason
from entrypoints.console.web import (
    ROW_ID_MAX,
    EngineDep,
    FormText,
    Me,
    RowId,
    check_csrf,
    not_found,
    now,
    page,
    workflow_client,
)
from models.status import Role
from models.tables import PurchaseRequisition, RequisitionState
from services.accounts import SignedIn
from services.errors import CommandError
from services.queries.ops import ops_exceptions
from services.restock import receive_and_wake
from services.stock import Receipt

log = structlog.get_logger(__name__)
OPS_ROLES = {Role.OPS.value, Role.ADMIN.value}  # who sees the page; its actions follow the API's roles
MAY_CANCEL = {role.value for role in CANCELLERS}
MAY_RECEIVE = {role.value for role in RECEIVERS}


def _ops_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    flash: str = "",
    problem: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """The page; `problem`: a refusal about something the page may no longer list (a requisition received)."""
    settings = settings_of(request)
    with read_only(engine) as session:
        found = ops_exceptions(session, now(), quiet_after=settings.parcel_quiet_after)
    context = {
        "me": me,
        "x": found,
        "errors": errors or {},
        "form": form or {},
        "flash": flash,
        "problem": problem,
        "may_cancel": me.user.role in MAY_CANCEL,
        "may_receive": me.user.role in MAY_RECEIVE,
    }
    return page(request, "ops.html", context, code)


def ops_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/ops", response_class=HTMLResponse)
    def ops(
        request: Request,
        me: Me,
        engine: EngineDep,
        cancelled: Annotated[str, Query(max_length=64)] = "",
        received: Annotated[int, Query(ge=0, le=ROW_ID_MAX)] = 0,
    ) -> HTMLResponse:
        if me.user.role not in OPS_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        flash = ""
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", cancelled):  # an order number, nothing else
            flash = f"{cancelled} {t('cancelled')}"
        elif received:
            with read_only(engine) as session:
                requisition = session.get(PurchaseRequisition, received)
            if requisition is not None:
                flash = f"{requisition.sku} {t('received_into')} {requisition.warehouse}"
        return _ops_page(request, engine, me, flash=flash)

    @router.post("/ops/backorders/{order_no}/cancel", response_model=None)
    async def cancel_backorder(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[FormText, Form(max_length=500)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in OPS_ROLES or me.user.role not in MAY_CANCEL:
            return not_found(request, "not_yours")
        error = await cancel_with_reason(request, engine, order_no, reason, me.user.name)
        if error:
            errors = {f"cancel-{order_no}": error}
            return _ops_page(request, engine, me, errors=errors, code=status.HTTP_409_CONFLICT)
        return RedirectResponse(f"/console/ops?cancelled={quote(order_no)}", status.HTTP_303_SEE_OTHER)

    @router.post("/ops/requisitions/{requisition_id}/receive", response_model=None)
    async def receive(
        request: Request,
        requisition_id: RowId,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        qty: Annotated[str, Form(max_length=12)] = "",
        lot: Annotated[FormText, Form(max_length=64)] = "",
        bin: Annotated[FormText, Form(max_length=64)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in OPS_ROLES or me.user.role not in MAY_RECEIVE:
            return not_found(request, "not_yours")
        with read_only(engine) as session:
            requisition = session.get(PurchaseRequisition, requisition_id)
        if requisition is None:
            return not_found(request, "no_such_requisition")
        key = f"receive-{requisition_id}"
        form = {f"{key}-qty": qty, f"{key}-lot": lot, f"{key}-bin": bin}
        try:
            receipt = Receipt.model_validate(
                {
                    "sku": requisition.sku,
                    "warehouse": requisition.warehouse,
                    "qty": qty.strip() or "0",  # pydantic reads the form's text as a number, or says why not
                    "lot": lot.strip(),
                    "bin": bin.strip() or "RECV-01",
                    # One receipt per requisition and lot: sending the form twice books it once.
                    "receipt_no": f"REQ-{requisition_id}-{lot.strip()}"[:100],
                }
            )
        except ValidationError as exc:
            errors = {f"{key}-{'-'.join(str(p) for p in e['loc'])}": e["msg"] for e in exc.errors()}
            return _ops_page(request, engine, me, errors=errors, form=form, code=status.HTTP_422_UNPROCESSABLE_CONTENT)
        try:
            booked = await receive_and_wake(
                engine,
                receipt,
                me.user.name,
                connect=lambda: workflow_client(request),
                task_queue=settings_of(request).task_queue,
                answering=requisition_id,
            )
        except CommandError as exc:  # received meanwhile (another lot, another tab), or a receipt number reused
            with read_only(engine) as session:
                row = session.get(PurchaseRequisition, requisition_id)
            listed = row is not None and row.state == RequisitionState.OPEN
            if not listed:  # its row is gone from the page: the refusal goes on top
                return _ops_page(request, engine, me, problem=str(exc), code=status.HTTP_409_CONFLICT)
            errors = {f"{key}-qty": str(exc)}
            return _ops_page(request, engine, me, errors=errors, form=form, code=status.HTTP_409_CONFLICT)
        log.info("receipt booked from the ops page", requisition=requisition_id, receipt=booked["receipt_id"])
        return RedirectResponse(f"/console/ops?received={requisition_id}", status.HTTP_303_SEE_OTHER)

    return router
