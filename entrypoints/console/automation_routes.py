"""The automations pages, /console/automations (ops and admin): the rules in force, the editor (a form for one
trigger, one condition and a sequence of actions; YAML for any rule), the dry run against an order or a stock
subject, enable / disable, the versions, and the run log with retry. The same services as `orderflow
automations …`: every save is a new version validated whole (a bad rule changes nothing and the page says which
field), the worker's dispatcher picks changes up within a second, no restart."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from core.db import read_only, unit_of_work
from entrypoints.api.deps import settings_of
from entrypoints.console.automation_form import (
    definition_of,
    form_of,
    parse_yaml,
    roles_and_fields,
    rows_for,
    trigger_summary,
    yaml_of,
)
from entrypoints.console.web import EngineDep, Me, check_csrf, not_found, now, page, workflow_client
from models.status import Role
from models.tables import AutomationRun
from rules.automation import NAME_PATTERN, AutomationError, parse_rule
from services.accounts import SignedIn
from services.automation import runs as automation_runs
from services.automation import store
from services.automation.dry_run import DryRun, dry_run
from services.automation.facts import SubjectGone
from services.errors import NotFound, Refused
from services.notify.writer import NoticeWriter

log = structlog.get_logger(__name__)
EDITORS = {Role.OPS.value, Role.ADMIN.value}
RuleName = Annotated[str, Path(pattern=NAME_PATTERN)]
RunId = Annotated[str, Path(min_length=1, max_length=300)]


async def _fields(request: Request) -> dict[str, Any]:
    """The posted form: text fields (at most 4,000 characters) and the multi-valued ones as lists."""
    raw = await request.form()
    fields: dict[str, Any] = {}
    for key in raw:
        values = [value[:4000] for value in raw.getlist(key) if isinstance(value, str)]
        many = key.endswith("_channels") or key == "find_status"
        fields[key] = values if many else (values[0] if values else "")
    return fields


def _list_page(request: Request, engine: EngineDep, me: SignedIn) -> HTMLResponse:
    with read_only(engine) as session:
        rules = store.current(session)
        failed = automation_runs.runs(session, failed=True, limit=20)
    rows = [(stored, trigger_summary(stored.rule.definition())) for stored in rules]
    return page(request, "automations.html", {"me": me, "rules": rows, "failed": failed})


def _rule_page(
    request: Request,
    engine: EngineDep,
    me: SignedIn,
    name: str | None,
    *,
    form: dict[str, Any] | None = None,
    yaml_text: str | None = None,
    error: str = "",
    flash: str = "",
    tried: DryRun | None = None,
    subject: str = "",
    code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """The editor: a stored rule (name) or a new one (None); `form` / `yaml_text`: what was posted, kept."""
    stored, versions, runs = None, [], []
    if name is not None:
        with read_only(engine) as session:
            versions = store.history(session, name)
            runs = automation_runs.runs(session, rule=name, limit=20)
        if not versions:
            return not_found(request, "no_such_automation")
        stored = versions[0]
    definition = stored.rule.definition() if stored else None
    values = form if form is not None else (form_of(definition) if definition else {"trigger_type": "order_created"})
    context = {
        "me": me,
        "stored": stored,
        "versions": versions,
        "runs": runs,
        "form": values,
        "rows": rows_for(values or {}),
        "yaml_text": yaml_text if yaml_text is not None else (yaml_of(definition) if definition else ""),
        "error": error,
        "flash": flash,
        "tried": tried,
        "subject": subject,
        **roles_and_fields(),
    }
    return page(request, "automation.html", context, code)


def _to_rule(name: str, saved: bool = False) -> RedirectResponse:
    return RedirectResponse(
        f"/console/automations/rules/{quote(name)}" + ("?saved=true" if saved else ""), status.HTTP_303_SEE_OTHER
    )


def automation_router() -> APIRouter:
    router = APIRouter(prefix="/console/automations", include_in_schema=False)

    def refused(request: Request, me: SignedIn) -> HTMLResponse | None:
        return None if me.user.role in EDITORS else not_found(request, "not_yours")

    def save(
        request: Request, engine: EngineDep, me: SignedIn, raw: dict[str, Any], *, name: str | None, how: str
    ) -> RedirectResponse:
        """Store `raw` as the next version of rule `name` (None: a new rule, whose name must be free)."""
        with unit_of_work(engine) as session:
            rule = parse_rule(raw)
            if name is None and store.history(session, rule.name):
                raise AutomationError(f"a rule named {rule.name!r} exists: open it to change it")
            if name is not None and rule.name != name:
                raise AutomationError(f"name: this page edits {name!r}; to make another rule, use New automation")
            saved = store.save(session, raw, by=me.user.name, note=f"saved in the console ({how})", now=now())
        log.info("automation saved in the console", rule=saved.rule.name, version=saved.version, by=me.user.name)
        return _to_rule(saved.rule.name, saved=True)

    @router.get("", response_class=HTMLResponse)
    def automations(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        return refused(request, me) or _list_page(request, engine, me)

    @router.get("/new", response_class=HTMLResponse)
    def new(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        return refused(request, me) or _rule_page(request, engine, me, None)

    @router.post("/new", response_model=None)
    async def create(request: Request, me: Me, engine: EngineDep) -> Response:
        fields = await _fields(request)
        check_csrf(me, str(fields.get("csrf", "")))
        if (answer := refused(request, me)) is not None:
            return answer
        try:
            if "yaml" in fields:
                return save(request, engine, me, parse_yaml(str(fields["yaml"])), name=None, how="YAML")
            return save(request, engine, me, definition_of(fields), name=None, how="form")
        except AutomationError as exc:
            form, text = (None, str(fields["yaml"])) if "yaml" in fields else (fields, None)
            return _rule_page(request, engine, me, None, form=form, yaml_text=text, error=str(exc), code=422)

    @router.get("/rules/{name}", response_class=HTMLResponse)
    def rule(request: Request, name: RuleName, me: Me, engine: EngineDep, saved: bool = False) -> HTMLResponse:
        if (answer := refused(request, me)) is not None:
            return answer
        return _rule_page(request, engine, me, name, flash="saved" if saved else "")

    @router.post("/rules/{name}", response_model=None)
    async def change(request: Request, name: RuleName, me: Me, engine: EngineDep) -> Response:
        fields = await _fields(request)
        check_csrf(me, str(fields.get("csrf", "")))
        if (answer := refused(request, me)) is not None:
            return answer
        try:
            if "yaml" in fields:
                return save(request, engine, me, parse_yaml(str(fields["yaml"])), name=name, how="YAML")
            return save(request, engine, me, definition_of({**fields, "name": name}), name=name, how="form")
        except AutomationError as exc:
            form, text = (None, str(fields["yaml"])) if "yaml" in fields else (fields, None)
            return _rule_page(request, engine, me, name, form=form, yaml_text=text, error=str(exc), code=422)

    @router.post("/rules/{name}/enabled", response_model=None)
    async def enable(request: Request, name: RuleName, me: Me, engine: EngineDep) -> Response:
        fields = await _fields(request)
        check_csrf(me, str(fields.get("csrf", "")))
        if (answer := refused(request, me)) is not None:
            return answer
        enabled = fields.get("enabled") == "true"
        try:
            with unit_of_work(engine) as session:
                store.set_enabled(session, name, enabled, by=me.user.name, now=now())
        except AutomationError:
            return not_found(request, "no_such_automation")
        log.info("automation enabled" if enabled else "automation disabled", rule=name, by=me.user.name)
        return _to_rule(name, saved=True)

    @router.post("/rules/{name}/dry-run", response_class=HTMLResponse)
    async def try_it(request: Request, name: RuleName, me: Me, engine: EngineDep) -> HTMLResponse:
        """What the rule in force would do on the subject now; read-only, nothing is sent or changed."""
        fields = await _fields(request)
        check_csrf(me, str(fields.get("csrf", "")))
        if (answer := refused(request, me)) is not None:
            return answer
        subject = str(fields.get("subject", "")).strip()[:200]
        with read_only(engine) as session:
            versions = store.history(session, name)
            if not versions:
                return not_found(request, "no_such_automation")
            try:
                notices = NoticeWriter.load(settings_of(request))
                tried = dry_run(session, versions[0].rule, subject, now(), notices)
            except SubjectGone as exc:
                return _rule_page(request, engine, me, name, error=str(exc), subject=subject, code=422)
        return _rule_page(request, engine, me, name, tried=tried, subject=subject)

    @router.get("/runs", response_class=HTMLResponse)
    def run_log(
        request: Request,
        me: Me,
        engine: EngineDep,
        failed: bool = False,
        rule: Annotated[str, Query(max_length=64)] = "",
        subject: Annotated[str, Query(max_length=200)] = "",
    ) -> HTMLResponse:
        if (answer := refused(request, me)) is not None:
            return answer
        with read_only(engine) as session:
            found = automation_runs.runs(session, rule=rule or None, subject=subject or None, failed=failed, limit=200)
        context = {"me": me, "runs": found, "failed": failed, "rule": rule, "subject": subject}
        return page(request, "automation_runs.html", context)

    def run_page(
        request: Request, engine: EngineDep, me: SignedIn, run_id: str, *, error: str = "", code: int = 200
    ) -> HTMLResponse:
        try:
            with read_only(engine) as session:
                view = automation_runs.run_view(session, run_id)
        except NotFound:
            return not_found(request, "no_such_run")
        context = {"me": me, "view": view, "run": view.run, "error": error}
        return page(request, "automation_run.html", context, code)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: RunId, me: Me, engine: EngineDep) -> HTMLResponse:
        return refused(request, me) or run_page(request, engine, me, run_id)

    @router.post("/runs/{run_id}/retry", response_model=None)
    async def retry(request: Request, run_id: RunId, me: Me, engine: EngineDep) -> Response:
        fields = await _fields(request)
        check_csrf(me, str(fields.get("csrf", "")))
        if (answer := refused(request, me)) is not None:
            return answer
        with read_only(engine) as session:
            found = session.get(AutomationRun, run_id)
        if found is None:
            return not_found(request, "no_such_run")
        if found.state != "failed":  # said before Temporal is asked anything
            error = f"run {run_id} is {found.state}: only a failed run can be retried"
            return run_page(request, engine, me, run_id, error=error, code=status.HTTP_409_CONFLICT)
        client = await workflow_client(request)
        from_start = fields.get("from_start") == "true"
        try:
            await automation_runs.retry(
                engine, client, run_id, from_start=from_start, task_queue=settings_of(request).task_queue
            )
        except NotFound:
            return not_found(request, "no_such_run")
        except Refused as exc:
            return run_page(request, engine, me, run_id, error=str(exc), code=status.HTTP_409_CONFLICT)
        log.info("automation run retried in the console", run=run_id, from_start=from_start, by=me.user.name)
        return RedirectResponse(f"/console/automations/runs/{quote(run_id)}", status.HTTP_303_SEE_OTHER)

    return router
