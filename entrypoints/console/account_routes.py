"""The signed-in person's own page, /console/me: who they are to the system (role, contacts, warehouses: an admin
changes those) and how staff notices reach them besides the inbox — the choice `orderflow users notices` makes."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import read_only, unit_of_work
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import EngineDep, Me, check_csrf, page
from services.accounts import SignedIn
from services.errors import CommandError
from services.queries.staff import member
from services.users import set_notice_channels

log = structlog.get_logger(__name__)


def _account_page(
    request: Request, engine: EngineDep, me: SignedIn, *, flash: str = "", error: str = "", code: int = 200
) -> HTMLResponse:
    with read_only(engine) as session:
        found = member(session, me.user.name)
    return page(request, "account.html", {"me": me, "u": found, "flash": flash, "error": error}, code)


def account_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/me", response_class=HTMLResponse)
    def account(request: Request, me: Me, engine: EngineDep, saved: bool = False) -> HTMLResponse:
        flash = translator(language_of(request))("saved") if saved else ""
        return _account_page(request, engine, me, flash=flash)

    @router.post("/me/notices", response_model=None)
    def notice_channels(
        request: Request,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        notify_email: Annotated[str, Form(max_length=8)] = "",
        notify_sms: Annotated[str, Form(max_length=8)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        email, sms = notify_email == "on", notify_sms == "on"
        try:
            with unit_of_work(engine) as session:
                set_notice_channels(session, me.user.name, email=email, sms=sms)
        except CommandError as exc:  # a channel without its address on file
            return _account_page(request, engine, me, error=str(exc), code=status.HTTP_422_UNPROCESSABLE_CONTENT)
        log.info("notice channels chosen", user=me.user.name, email=email, sms=sms)
        return RedirectResponse("/console/me?saved=true", status.HTTP_303_SEE_OTHER)

    return router
