"""Out of office, /console/away: an approver names a substitute for a span of days, sees whom they stand in for,
and withdraws a substitution; an admin does the same for any approver (services/substitutes.py has the rules)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from core.db import read_only, unit_of_work
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import EngineDep, Me, RowId, check_csrf, not_found, now, page
from models.status import Role
from models.tables import User
from services.accounts import SignedIn
from services.errors import CommandError
from services.queries.inbox import decidable_levels
from services.substitutes import name_substitute, standing_for, substitutions_of, withdraw
from services.users import InvalidFields

log = structlog.get_logger(__name__)


def _may_hand_over(me: SignedIn, principal: str) -> bool:
    """Approvers for themselves; an admin for anyone."""
    return me.user.role == Role.ADMIN.value or principal == me.user.name


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _away_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    flash: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    zone = settings_of(request).business_zone
    at = now()
    is_admin = me.user.role == Role.ADMIN.value
    with read_only(engine) as session:
        people = session.exec(select(User).where(col(User.disabled).is_(False)).order_by(col(User.name))).all()
        approvers = [u.name for u in people if decidable_levels(u.role)]
        principals = approvers if is_admin else [me.user.name]
        mine = [s for name in principals for s in substitutions_of(session, name, at, zone)]
        covering = standing_for(session, me.user.name, at, zone)
    context: dict[str, Any] = {
        "me": me,
        "today": at.astimezone(zone).date().isoformat(),
        "zone": str(zone),
        "principals": principals,
        "candidates": [u.name for u in people],
        "substitutions": mine,
        "covering": covering,
        "may_hand_over": bool(principals) and (is_admin or me.user.name in approvers),
        "errors": errors or {},
        "form": form or {},
        "flash": flash,
    }
    return page(request, "away.html", context, code)


def away_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/away", response_class=HTMLResponse)
    def away(request: Request, me: Me, engine: EngineDep, saved: str = "") -> HTMLResponse:
        t = translator(language_of(request))
        flash = {"named": t("substitute_named"), "withdrawn": t("substitute_withdrawn")}.get(saved, "")
        return _away_page(request, engine, me, flash=flash)

    @router.post("/away", response_model=None)
    def hand_over(
        request: Request,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        principal: Annotated[str, Form(max_length=64)] = "",
        substitute: Annotated[str, Form(max_length=64)] = "",
        first_day: Annotated[str, Form(max_length=10)] = "",
        last_day: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        principal = principal or me.user.name
        if not _may_hand_over(me, principal):
            return not_found(request, "not_yours")
        form = {"principal": principal, "substitute": substitute, "first_day": first_day, "last_day": last_day}
        first, last = _day(first_day), _day(last_day)
        errors = {key: "a date like 2026-12-24" for key, day in (("first_day", first), ("last_day", last)) if not day}
        if not substitute:
            errors["substitute"] = "choose who decides for you"
        settings = settings_of(request)
        try:
            if errors or first is None or last is None:
                raise InvalidFields(errors)
            with unit_of_work(engine) as session:
                name_substitute(
                    session,
                    principal=principal,
                    substitute=substitute,
                    first_day=first,
                    last_day=last,
                    by=me.user.name,
                    now=now(),
                    zone=settings.business_zone,
                    max_days=settings.substitution_max_days,
                )
        except InvalidFields as exc:
            return _away_page(request, engine, me, errors=exc.errors, form=form, code=422)
        except CommandError as exc:  # an unknown principal (an admin's stale page)
            return _away_page(request, engine, me, errors={"principal": str(exc)}, form=form, code=422)
        log.info("substitute named", principal=principal, substitute=substitute, first=first_day, last=last_day)
        return RedirectResponse("/console/away?saved=named", status.HTTP_303_SEE_OTHER)

    @router.post("/away/{substitution_id}/withdraw", response_model=None)
    def withdraw_substitution(
        request: Request,
        substitution_id: RowId,
        me: Me,
        engine: EngineDep,
        csrf: Annotated[str, Form()] = "",
        principal: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        check_csrf(me, csrf)
        principal = principal or me.user.name
        if not _may_hand_over(me, principal):
            return not_found(request, "not_yours")
        try:
            with unit_of_work(engine) as session:
                withdraw(session, substitution_id, principal=principal, now=now())
        except CommandError as exc:
            return _away_page(request, engine, me, errors={"withdraw": str(exc)}, code=status.HTTP_409_CONFLICT)
        log.info("substitute withdrawn", principal=principal, substitution=substitution_id, by=me.user.name)
        return RedirectResponse("/console/away?saved=withdrawn", status.HTTP_303_SEE_OTHER)

    return router
