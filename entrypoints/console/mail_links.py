"""The pages links in notices open, without a session: approve from the mail, and the customer's tracking page.

/console/approve/{token}: GET only shows the decision to confirm (a mail scanner following the link decides
nothing); POST, with the page's double-submit token, decides through the same command as the inbox, as the
approver the link was sent to. /track/{token}: one order as its customer may see it (services/links.py says what
a token binds and how long it works). Both answer a link that does not work with 410 and why.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, Response

from core.db import read_only
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import (
    EngineDep,
    FormText,
    check_form_token,
    now,
    page,
    page_with_form_token,
    workflow_client,
)
from services import order_commands
from services.errors import CommandError
from services.links import (
    ApprovalGrant,
    LinkRefused,
    open_approval_link,
    release_approval_link,
    spend_approval_link,
    tracking_order,
)
from services.queries.inbox import approval_todo
from services.queries.tracking_page import customer_tracking

# The token is the credential: it never goes to another page in a Referer header.
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def _refused(request: Request, refusal: LinkRefused) -> HTMLResponse:
    why = translator(language_of(request))(f"link_{refusal.reason}").format(order_no=refusal.order_no, at=refusal.at)
    response = page(request, "link_refused.html", {"why": why}, status.HTTP_410_GONE)
    response.headers.update(NO_REFERRER)
    return response


def _confirm_page(
    request: Request, engine: EngineDep, grant: ApprovalGrant, *, error: str = "", comment: str = "", code: int = 200
) -> HTMLResponse:
    with read_only(engine) as session:
        todo = approval_todo(session, grant.order_no)
    context = {"grant": grant, "a": todo, "error": error, "comment": comment}
    response = page_with_form_token(request, "approve_link.html", context, code)
    response.headers.update(NO_REFERRER)
    return response


def mail_link_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/console/approve/{token}", response_class=HTMLResponse)
    def approve_page(request: Request, token: str, engine: EngineDep) -> HTMLResponse:
        try:
            with read_only(engine) as session:
                grant = open_approval_link(session, token, now())
        except LinkRefused as exc:
            return _refused(request, exc)
        return _confirm_page(request, engine, grant)

    @router.post("/console/approve/{token}", response_class=HTMLResponse)
    async def approve_submit(
        request: Request,
        token: str,
        engine: EngineDep,
        form_token: Annotated[str, Form(max_length=100)] = "",
        decision: Annotated[str, Form(max_length=16)] = "",
        comment: Annotated[FormText, Form(max_length=2000)] = "",
    ) -> Response:
        check_form_token(request, form_token)
        at = now()
        try:
            with read_only(engine) as session:
                grant = open_approval_link(session, token, at)
        except LinkRefused as exc:
            return _refused(request, exc)
        t = translator(language_of(request))
        if decision not in ("approve", "reject"):
            return _confirm_page(request, engine, grant, error=t("choose_decision"), comment=comment, code=422)
        client = await workflow_client(request)  # before the link is spent: Temporal down spends nothing
        if not spend_approval_link(engine, grant, at):  # another click (or tab) took it a moment ago
            return _refused(request, LinkRefused("used", order_no=grant.order_no, at=at))
        try:
            await order_commands.decide(
                client,
                engine,
                grant.order_no,
                user=grant.approver,
                decision=decision,
                comment=comment.strip(),
                secret=settings_of(request).decision_secret,
                role=grant.approver_role,
                level=grant.level,
            )
        except CommandError as exc:
            # Nothing was decided: the link works again (the same refusal, or success once Temporal is back).
            release_approval_link(engine, grant)
            return _confirm_page(request, engine, grant, error=str(exc), comment=comment, code=409)
        except BaseException:
            # Temporal failed mid-way (a 503 page follows): the link works again. Had the decision gone through
            # after all, the decided level voids the link, so it can never decide twice.
            release_approval_link(engine, grant)
            raise
        context = {"grant": grant, "decision": decision}
        response = page(request, "approve_done.html", context)
        response.headers.update(NO_REFERRER)
        return response

    @router.get("/track/{token}", response_class=HTMLResponse)
    def track(request: Request, token: str, engine: EngineDep) -> HTMLResponse:
        settings = settings_of(request)
        try:
            order_no = tracking_order(settings.link_secret, token, now())
        except LinkRefused as exc:
            return _refused(request, exc)
        with read_only(engine) as session:
            found = customer_tracking(session, order_no, transit=settings.expected_transit)
        if found is None:  # a link signed for an order since purged
            return _refused(request, LinkRefused("invalid"))
        response = page(request, "track.html", {"o": found, "customer_page": True})
        response.headers.update(NO_REFERRER)
        return response

    return router
