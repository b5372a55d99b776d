"""The admin's pages, /console/admin: the staff — add a user (their console password and API token shown once),
change a role, e-mail, phone, warehouses and how staff notices reach them, reset a password (their sessions end),
disable or enable — and the warehouses. The same services as `orderflow users …`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import read_only, unit_of_work
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import EngineDep, Me, check_csrf, not_found, page
from models.status import Role
from services.accounts import SignedIn, new_password, set_disabled, set_password
from services.errors import CommandError
from services.queries.staff import member, staff, warehouses
from services.users import InvalidFields, create_user, update_user

log = structlog.get_logger(__name__)
ROLES = [role.value for role in Role]


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The posted form's text fields (each at most 200 characters) and its ticked warehouses."""
    raw = await request.form()
    fields = {k: v.strip()[:200] for k, v in raw.items() if isinstance(v, str) and k != "warehouse"}
    return fields, [str(v) for v in raw.getlist("warehouse")][:20]


def _role(text: str) -> Role | None:
    try:
        return Role(text)
    except ValueError:
        return None


def _admin_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    shown_once: dict[str, str] | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        context = {"me": me, "staff": staff(session), "warehouses": warehouses(session)}
    context.update(roles=ROLES, errors=errors or {}, form=form or {}, shown_once=shown_once)
    return page(request, "admin.html", context, code)


def _user_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    name: str,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    flash: str = "",
    shown_once: dict[str, str] | None = None,
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    with read_only(engine) as session:
        found = member(session, name)
        all_warehouses = warehouses(session)
    if found is None:
        return not_found(request, "no_such_user")
    context = {"me": me, "u": found, "warehouses": all_warehouses, "roles": ROLES, "errors": errors or {}}
    context.update(form=form, flash=flash, shown_once=shown_once)
    return page(request, "admin_user.html", context, code)


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/console/admin", include_in_schema=False)

    def refused(request: Request, me: SignedIn) -> HTMLResponse | None:
        return None if me.user.role == Role.ADMIN.value else not_found(request, "not_yours")

    @router.get("", response_class=HTMLResponse)
    def admin(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        return refused(request, me) or _admin_page(request, engine, me)

    @router.post("/users", response_class=HTMLResponse)
    async def add(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        fields, ticked = await _form(request)
        check_csrf(me, fields.get("csrf", ""))
        if (answer := refused(request, me)) is not None:
            return answer
        role = _role(fields.get("role", ""))
        name = fields.get("name", "")
        form = {**fields, "warehouses": ticked}
        try:
            if role is None:
                raise InvalidFields({"role": "choose a role"})
            password = new_password()
            with unit_of_work(engine) as session:
                token = create_user(
                    session, name, role, email=fields.get("email"), phone=fields.get("phone"), warehouses=ticked
                )
                set_password(session, name, password)
        except InvalidFields as exc:
            return _admin_page(request, engine, me, errors=exc.errors, form=form, code=422)
        except CommandError as exc:  # an unknown warehouse
            return _admin_page(request, engine, me, errors={"warehouse": str(exc)}, form=form, code=422)
        log.info("user added in the console", user=name, role=role.value, by=me.user.name)
        shown = {"name": name, "password": password, "token": token}
        return _admin_page(request, engine, me, shown_once=shown, code=status.HTTP_201_CREATED)

    @router.get("/users/{name}", response_class=HTMLResponse)
    def user(request: Request, name: str, me: Me, engine: EngineDep, saved: bool = False) -> HTMLResponse:
        if (answer := refused(request, me)) is not None:
            return answer
        flash = translator(language_of(request))("saved") if saved else ""
        return _user_page(request, engine, me, name, flash=flash)

    @router.post("/users/{name}", response_model=None)
    async def change(request: Request, name: str, me: Me, engine: EngineDep) -> Response:
        fields, ticked = await _form(request)
        check_csrf(me, fields.get("csrf", ""))
        if (answer := refused(request, me)) is not None:
            return answer
        role = _role(fields.get("role", ""))
        form = {**fields, "warehouses": ticked}
        t = translator(language_of(request))
        try:
            if role is None:
                raise InvalidFields({"role": "choose a role"})
            if name == me.user.name and role != Role.ADMIN:
                raise InvalidFields({"role": t("keep_own_admin")})
            with unit_of_work(engine) as session:
                update_user(
                    session,
                    name,
                    role=role,
                    email=fields.get("email"),
                    phone=fields.get("phone"),
                    warehouses=ticked,
                    notify_email=fields.get("notify_email") == "on",
                    notify_sms=fields.get("notify_sms") == "on",
                )
        except InvalidFields as exc:
            return _user_page(request, engine, me, name, errors=exc.errors, form=form, code=422)
        except CommandError as exc:
            return _user_page(request, engine, me, name, errors={"warehouse": str(exc)}, form=form, code=422)
        log.info("user changed in the console", user=name, role=role.value, by=me.user.name)
        return RedirectResponse(f"/console/admin/users/{quote(name)}?saved=true", status.HTTP_303_SEE_OTHER)

    @router.post("/users/{name}/password", response_class=HTMLResponse)
    async def reset_password(request: Request, name: str, me: Me, engine: EngineDep) -> HTMLResponse:
        fields, _ = await _form(request)
        check_csrf(me, fields.get("csrf", ""))
        if (answer := refused(request, me)) is not None:
            return answer
        password = new_password()
        try:
            with unit_of_work(engine) as session:
                set_password(session, name, password)  # their sessions end
        except CommandError:
            return not_found(request, "no_such_user")
        log.info("password reset in the console", user=name, by=me.user.name)
        return _user_page(request, engine, me, name, shown_once={"name": name, "password": password})

    @router.post("/users/{name}/disabled", response_model=None)
    async def disable(request: Request, name: str, me: Me, engine: EngineDep) -> Response:
        fields, _ = await _form(request)
        check_csrf(me, fields.get("csrf", ""))
        if (answer := refused(request, me)) is not None:
            return answer
        disabled = fields.get("disabled") == "true"
        if name == me.user.name and disabled:
            errors = {"disabled": translator(language_of(request))("keep_own_admin")}
            return _user_page(request, engine, me, name, errors=errors, code=status.HTTP_409_CONFLICT)
        try:
            with unit_of_work(engine) as session:
                set_disabled(session, name, disabled)  # disabling ends their sessions and stops their token
        except CommandError:
            return not_found(request, "no_such_user")
        log.info("user disabled" if disabled else "user enabled", user=name, by=me.user.name)
        return RedirectResponse(f"/console/admin/users/{quote(name)}?saved=true", status.HTTP_303_SEE_OTHER)

    return router
