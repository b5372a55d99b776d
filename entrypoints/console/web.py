"""What every console page shares: the signed-in user, CSRF checks, rendering with the security headers.

Pages need a signed-in session (cookie `of_session`, HttpOnly, SameSite=Lax, Secure over https) except the sign-in
page, the approve-from-the-mail page and the customer's tracking page; every form carries a CSRF token (the
session's, or a double-submit token where there is no session).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import AfterValidator
from sqlalchemy import Engine
from temporalio.client import Client

from entrypoints.api.auth import engine_of
from entrypoints.api.deps import temporal_client
from entrypoints.console.i18n import language_of, other_language, translator
from models.text import storable
from services.accounts import SignedIn, signed_in

HERE = Path(__file__).parent
SESSION_COOKIE = "of_session"
FORM_COOKIE = "of_form"  # CSRF token of the forms posted without a session (double submit)
# Pages only load our own files: no inline script, no other origin, never inside another site's frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")


class NotSignedIn(Exception):
    def __init__(self, next_url: str, ended: bool) -> None:
        self.next_url = next_url
        self.ended = ended


class FormExpired(Exception):
    """A form without the right CSRF token."""


class TemporalDown(Exception):
    """Temporal did not answer before anything was asked of it: nothing changed (a 503 page says so)."""


# A form's free text (comments, reasons, references): what the API's models.text.Note accepts, so the database
# can store it (a NUL would make the record step retry forever on Postgres). A bad one is a 422 page.
FormText = Annotated[str, AfterValidator(storable)]

# A row's id in a URL: what both databases' integer columns hold (a bigger one would overflow SQLite's binding).
ROW_ID_MAX = 2**31 - 1
RowId = Annotated[int, PathParam(ge=1, le=ROW_ID_MAX)]

# The console's own URLs (pages, never JSON): its refusals are pages too.
CONSOLE_PATHS = ("/console", "/track/")


def now() -> datetime:
    return datetime.now(UTC)


def secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def current(request: Request) -> SignedIn:
    """The signed-in user, or a redirect to the sign-in page (which then comes back here)."""
    token = request.cookies.get(SESSION_COOKIE)
    found = signed_in(engine_of(request), token, now=now()) if token else None
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(target if request.method == "GET" else "/console", ended=token is not None)
    return found


Me = Annotated[SignedIn, Depends(current)]
EngineDep = Annotated[Engine, Depends(engine_of)]


def check_csrf(me: SignedIn, sent: str) -> None:
    if not sent or not same(sent, me.session.csrf_token):
        raise FormExpired


def same(sent: str, expected: str) -> bool:
    """A constant-time comparison that takes any text (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest(sent.encode(), expected.encode())


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    language = language_of(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": translator(language),
            "lang": language,
            "other_lang": other_language(language),
            "now": now(),
            "ago": ago,
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def not_found(request: Request, message_key: str) -> HTMLResponse:
    """Something that does not exist, or that this person may not see: the same answer for both."""
    return page(request, "refused.html", {"message_key": message_key}, status.HTTP_404_NOT_FOUND)


def sign_in_form(request: Request, context: dict[str, Any], status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    """The sign-in page with a fresh form token, also set as a cookie (double submit: there is no session yet)."""
    return page_with_form_token(request, "sign_in.html", context, status_code)


def page_with_form_token(
    request: Request, name: str, context: dict[str, Any], status_code: int = status.HTTP_200_OK
) -> HTMLResponse:
    """A page whose form is posted without a session (sign-in, approve from the mail): its CSRF token is fresh,
    in the form and in a cookie, and the POST must bring both (double submit)."""
    form_token = secrets.token_urlsafe(32)
    response = page(request, name, {**context, "form_token": form_token}, status_code)
    response.set_cookie(FORM_COOKIE, form_token, httponly=True, samesite="lax", secure=secure(request), path="/")
    return response


def unavailable(request: Request) -> HTMLResponse:
    """Temporal did not answer: nothing was decided or changed, the person may try again."""
    return page(request, "refused.html", {"message_key": "temporal_down"}, status.HTTP_503_SERVICE_UNAVAILABLE)


def bad_form(request: Request, exc: RequestValidationError) -> HTMLResponse:
    """A form the console's own pages never send (too long, a control character, a number that is none): which
    field and why, nothing changed."""
    problems = [(".".join(str(part) for part in e.get("loc", ())[1:]), str(e.get("msg", ""))) for e in exc.errors()]
    return page(request, "bad_form.html", {"problems": problems}, status.HTTP_422_UNPROCESSABLE_CONTENT)


async def workflow_client(request: Request) -> Client:
    """The app's Temporal client for a console action; TemporalDown (a page) when Temporal cannot be reached."""
    try:
        return await temporal_client(request)
    except HTTPException:
        raise TemporalDown from None


def check_form_token(request: Request, sent: str) -> None:
    """The double-submit check of page_with_form_token's forms."""
    if not sent or not same(sent, request.cookies.get(FORM_COOKIE, "")):
        raise FormExpired


def ago(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def safe_next(url: str | None) -> str:
    """Only our own pages: never an open redirect to another site."""
    if url and url.startswith(("/console", "/track/")) and not url.startswith("//"):
        return url
    return "/console"
