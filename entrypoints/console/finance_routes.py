"""Finance's page, /console/finance: payments to confirm (the API's payment update, with its reference), credit
holds (decided in the inbox, like any approval), refunds to approve (over the approval amount: a signed decision
to the refund's workflow) and refunds to make by hand (recorded with their payment reference). The books —
invoices, bank lines, reconciliation — are money_routes.py's."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import read_only, unit_of_work
from entrypoints.api.auth import FINANCE
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import EngineDep, FormText, Me, check_csrf, not_found, now, page, workflow_client
from services import order_commands
from services.accounts import SignedIn
from services.errors import CommandError
from services.queries.finance import credit_holds, payments_to_confirm, refunds_due, refunds_to_approve
from services.refunds import record_refund

FINANCE_ROLES = {role.value for role in FINANCE}


def _finance_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    *,
    errors: dict[str, str] | None = None,
    flash: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        context = {
            "me": me,
            "payments": payments_to_confirm(session),
            "holds": credit_holds(session),
            "refunds": refunds_due(session),
            "to_approve": refunds_to_approve(session),
            "errors": errors or {},
            "flash": flash,
        }
    return page(request, "finance.html", context, code)


def finance_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/finance", response_class=HTMLResponse)
    def finance(
        request: Request,
        me: Me,
        engine: EngineDep,
        paid: str = "",
        refunded: str = "",
        refund_approved: str = "",
        refund_declined: str = "",
    ) -> HTMLResponse:
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        shown = {
            "payment_confirmed": paid, "refund_recorded": refunded, "refund_approved_flash": refund_approved,
            "refund_declined_flash": refund_declined,
        }  # fmt: skip
        flash = next((f"{number} {t(key)}" for key, number in shown.items() if number), "")
        return _finance_page(request, engine, me, flash=flash)

    @router.post("/finance/payments/{order_no}", response_model=None)
    async def confirm_payment(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        reference: Annotated[FormText, Form(max_length=200)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        t = translator(language_of(request))
        error = ""
        if not reference.strip():
            error = t("reference_required")
        else:
            try:
                client = await workflow_client(request)
                await order_commands.pay(client, order_no, reference=reference.strip(), by=me.user.name)
            except CommandError as exc:  # not awaiting a payment (any more), say
                error = str(exc)
        if error:
            errors = {f"payref-{order_no}": error}
            return _finance_page(request, engine, me, errors=errors, code=status.HTTP_409_CONFLICT)
        return RedirectResponse(f"/console/finance?paid={quote(order_no)}", status.HTTP_303_SEE_OTHER)

    @router.post("/finance/refunds/{order_no}/decision", response_model=None)
    async def refund_decision(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        decision: Annotated[Literal["approve", "reject"], Form()] = "approve",
        comment: Annotated[FormText, Form(max_length=500)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        try:
            client = await workflow_client(request)
            await order_commands.decide_refund(
                client, engine, order_no, user=me.user.name, role=me.user.role, decision=decision,
                comment=comment.strip(), secret=settings_of(request).decision_secret,
            )  # fmt: skip
        except CommandError as exc:
            errors = {f"refund-decision-{order_no}": str(exc)}
            return _finance_page(request, engine, me, errors=errors, code=status.HTTP_409_CONFLICT)
        word = "refund_approved" if decision == "approve" else "refund_declined"
        return RedirectResponse(f"/console/finance?{word}={quote(order_no)}", status.HTTP_303_SEE_OTHER)

    @router.post("/finance/refunds/{order_no}", response_model=None)
    def refunded(
        request: Request,
        order_no: str,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        reference: Annotated[FormText, Form(max_length=200)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        if me.user.role not in FINANCE_ROLES:
            return not_found(request, "not_yours")
        try:
            with unit_of_work(engine) as session:
                record_refund(session, order_no, reference=reference, by=me.user.name, at=now())
        except CommandError as exc:
            return _finance_page(
                request, engine, me, errors={f"refundref-{order_no}": str(exc)}, code=status.HTTP_409_CONFLICT
            )
        return RedirectResponse(f"/console/finance?refunded={quote(order_no)}", status.HTTP_303_SEE_OTHER)

    return router
