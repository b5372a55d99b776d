"""The managers' cockpit in the console: KPI cards with trend arrows and charts (ECharts, vendored) for a period and
filters; the two built-in cockpits (fulfilment efficiency, sales performance) and the ones people compose; a click
on a card, bar or slice opens the orders behind it (filters kept), each linking to its page and its workflow.

Every member of staff may open it; what the figures count is their scope (services/queries/kpis.py scope_of),
enforced in the queries — the same as `GET /kpis`. The page's script asks /console/cockpit/stamp every 2 s and
fetches the figures again when it moves (within 5 s of an order event, without a reload)."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session

from core.db import read_only, unit_of_work
from domain.kpis import shown
from entrypoints.api.deps import settings_of
from entrypoints.console.i18n import language_of, translator
from entrypoints.console.web import EngineDep, Me, check_csrf, not_found, now, page
from models.status import Role
from services import dashboards
from services.errors import CommandError, NotFound
from services.queries import kpis
from services.queries.cockpit import change_stamp, filter_options
from services.queries.kpi_request import PARAMETERS, BadKpiQuestion, breakdown_of, filters_of, kpi_of
from services.queries.order_list import drilled_rows

DRILL_PAGE = 200
CHART_KINDS = ("line", "bar", "pie")


def _question(request: Request, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """The period and filters of the query string (a cockpit's saved defaults under them)."""
    given = {name: request.query_params.get(name, "") for name in PARAMETERS if name in request.query_params}
    return {**(defaults or {}), **given} if given else dict(defaults or {})


def _ask(request: Request, session: Session, me: Me, params: dict[str, str]) -> kpis.Ask:
    settings = settings_of(request)
    at = now()
    return kpis.Ask(filters_of(params, settings.business_zone, at), kpis.scope_of(session, me.user),
                    settings.business_zone, at)  # fmt: skip


def _cards(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's cards as the page shows them (figures in words, arrows coloured by which way is better)."""
    out = {}
    for kpi_id, card in report["kpis"].items():
        good = card["trend"] in ("up", "down") and card["trend"] == card["better"]
        bad = card["trend"] in ("up", "down") and not good
        out[kpi_id] = {**card, "shown": shown(card["unit"], card["value"]),
                       "previous_shown": shown(card["unit"], card["previous"]),
                       "arrow": {"up": "▲", "down": "▼", "flat": "▶", "none": ""}[card["trend"]],
                       "tone": "good" if good else "bad" if bad else ""}  # fmt: skip
    return out


def _link(path: str, params: dict[str, str], **extra: str | None) -> str:
    query = {k: v for k, v in {**params, **extra}.items() if v}
    return path + ("?" + urlencode(query) if query else "")


def cockpit_router() -> APIRouter:
    router = APIRouter(prefix="/console/cockpit", include_in_schema=False)

    @router.get("", response_class=RedirectResponse)
    def cockpit_home(request: Request, me: Me) -> RedirectResponse:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"/console/cockpit/fulfilment{query}", status.HTTP_303_SEE_OTHER)

    @router.get("/stamp")
    def stamp(me: Me, engine: EngineDep) -> JSONResponse:
        with read_only(engine) as session:
            return JSONResponse({"stamp": change_stamp(session)}, headers={"Cache-Control": "no-store"})

    @router.get("/cards/{slug}")
    def cards(request: Request, slug: str, me: Me, engine: EngineDep) -> Response:
        """The board's cards (JSON, for the live refresh)."""
        with read_only(engine) as session:
            try:
                board = dashboards.board(session, me.user, slug)
                ask = _ask(request, session, me, _question(request, board.spec.filters))
            except NotFound:
                return JSONResponse({"detail": "no such cockpit"}, status.HTTP_404_NOT_FOUND)
            except BadKpiQuestion as exc:
                return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
            report = kpis.report(session, ask, board.spec.cards)
        return JSONResponse({"cards": _cards(report)}, headers={"Cache-Control": "no-store"})

    @router.get("/data/{kpi_id}.csv", response_model=None)
    def chart_csv(request: Request, kpi_id: str, me: Me, engine: EngineDep,
                  by: Annotated[str, Query(max_length=32)] = "") -> Response:  # fmt: skip
        with read_only(engine) as session:
            try:
                chart = kpis.breakdown(session, _ask(request, session, me, _question(request)), kpi_of(kpi_id),
                                       breakdown_of(kpi_id, by))  # fmt: skip
            except BadKpiQuestion as exc:
                return Response(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="text/plain")
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(
            [chart["by"], kpi_id, "shown"] + (["share"] if any("share" in r for r in chart["rows"]) else [])
        )
        for row in chart["rows"]:
            value = "" if row["value"] is None else str(row["value"])
            extra = [f"{row['share']:.6f}" if row.get("share") is not None else ""] if "share" in row else []
            writer.writerow([row["key"], value, shown(chart["unit"], row["value"]), *extra])
        name = quote(f"{kpi_id}-by-{chart['by']}-{chart['period']['first']}-{chart['period']['last']}.csv")
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})  # fmt: skip

    @router.get("/data/{kpi_id}")
    def chart_data(request: Request, kpi_id: str, me: Me, engine: EngineDep,
                   by: Annotated[str, Query(max_length=32)] = "") -> JSONResponse:  # fmt: skip
        """A chart's data: the KPI per group, each with its value in words and the link to its orders."""
        params = _question(request)
        with read_only(engine) as session:
            try:
                dimension = breakdown_of(kpi_of(kpi_id), by)
                chart = kpis.breakdown(session, _ask(request, session, me, params), kpi_id, dimension)
            except BadKpiQuestion as exc:
                return JSONResponse({"detail": str(exc)}, status.HTTP_422_UNPROCESSABLE_CONTENT)
        drills = kpi_id in kpis.FAMILIES[kpis.CATALOGUE[kpi_id].family].drill
        for row in chart["rows"]:
            row["shown"] = shown(chart["unit"], row["value"])
            row["value"] = None if row["value"] is None else float(row["value"])
            row["orders"] = (
                _link("/console/cockpit/orders", params, kpi=kpi_id, by=dimension, group=row["key"]) if drills else None
            )
        chart["csv"] = _link(f"/console/cockpit/data/{kpi_id}.csv", params, by=dimension)
        return JSONResponse(chart, headers={"Cache-Control": "no-store"})

    @router.get("/orders", response_class=HTMLResponse, response_model=None)
    def drilled(request: Request, me: Me, engine: EngineDep, kpi: Annotated[str, Query(max_length=64)] = "",
                by: Annotated[str, Query(max_length=32)] = "", group: Annotated[str, Query(max_length=200)] = "",
                csv_: Annotated[bool, Query(alias="csv")] = False) -> Response:  # fmt: skip
        """The orders behind a card, a bar or a slice, worst first, with the filters that made the figure."""
        params = _question(request)
        with read_only(engine) as session:
            try:
                kpi_id = kpi_of(kpi)
                dimension = breakdown_of(kpi_id, by) if by else None
                ask = _ask(request, session, me, params)
                numbers = kpis.drill(session, ask, kpi_id, dimension, group if dimension else None)
            except (BadKpiQuestion, ValueError) as exc:
                return page(request, "refused.html", {"me": me, "message": str(exc)},
                            status.HTTP_422_UNPROCESSABLE_CONTENT)  # fmt: skip
            rows = drilled_rows(session, numbers if csv_ else numbers[:DRILL_PAGE])
        if csv_:
            return _orders_csv(kpi_id, rows)
        context = {
            "me": me,
            "kpi": kpis.CATALOGUE[kpi_id],
            "by": dimension,
            "group": group if dimension else "",
            "ask": ask,
            "rows": rows,
            "count": len(numbers),
            "limit": DRILL_PAGE,
            "csv_url": _link("/console/cockpit/orders", params, kpi=kpi_id, by=dimension, group=group, csv="1"),
            "back": _link("/console/cockpit", params),
        }
        return page(request, "cockpit_orders.html", context)

    @router.get("/new", response_class=HTMLResponse)
    def new_board(request: Request, me: Me, engine: EngineDep) -> HTMLResponse:
        return _form(request, me, engine, None, {"cards": [], "charts": [], "filters": {}}, "", None)

    @router.post("/new", response_model=None)
    async def create_board(request: Request, me: Me, engine: EngineDep) -> Response:
        return await _save(request, me, engine, None)

    @router.get("/{slug}/edit", response_class=HTMLResponse)
    def edit_board(request: Request, slug: str, me: Me, engine: EngineDep) -> HTMLResponse:
        with read_only(engine) as session:
            try:
                board = dashboards.board(session, me.user, slug)
            except NotFound:
                return not_found(request, "no_such_cockpit")
        if board.builtin or board.owner != me.user.name:
            return not_found(request, "no_such_cockpit")
        return _form(request, me, engine, slug, board.spec.model_dump(mode="json"), board.name, board.shared_role)

    @router.post("/{slug}/edit", response_model=None)
    async def change_board(request: Request, slug: str, me: Me, engine: EngineDep) -> Response:
        return await _save(request, me, engine, slug)

    @router.post("/{slug}/delete", response_model=None)
    def delete_board(request: Request, slug: str, me: Me, engine: EngineDep,
                     csrf: Annotated[str, Form()] = "") -> Response:  # fmt: skip
        check_csrf(me, csrf)
        with unit_of_work(engine) as session:
            try:
                dashboards.delete(session, me.user, slug)
            except NotFound:
                return not_found(request, "no_such_cockpit")
        return RedirectResponse("/console/cockpit", status.HTTP_303_SEE_OTHER)

    @router.get("/{slug}", response_class=HTMLResponse)
    def cockpit(request: Request, slug: str, me: Me, engine: EngineDep) -> HTMLResponse:
        with read_only(engine) as session:
            try:
                board = dashboards.board(session, me.user, slug)
            except NotFound:
                return not_found(request, "no_such_cockpit")
            params = _question(request, board.spec.filters)
            try:
                ask = _ask(request, session, me, params)
            except BadKpiQuestion as exc:
                errors = str(exc)
                params = dict(board.spec.filters)
                ask = _ask(request, session, me, params)
            else:
                errors = ""
            report = kpis.report(session, ask, board.spec.cards)
            options = filter_options(session, ask.scope)
            boards = dashboards.boards_for(session, me.user)
        t = translator(language_of(request))
        cards = _cards(report)
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for kpi_id, card in cards.items():
            groups.setdefault(card["group"], []).append((kpi_id, card))
        charts = [
            {"id": f"chart-{n}", "kpi": c.kpi, "by": c.by, "kind": c.kind,
             "title": f"{t('kpi_' + c.kpi)} · {t('by_' + c.by)}",
             "data": _link(f"/console/cockpit/data/{c.kpi}", params, by=c.by)}
            for n, c in enumerate(board.spec.charts)
        ]  # fmt: skip
        context = {
            "me": me,
            "board": board,
            "boards": boards,
            "title": t(board.name) if board.builtin else board.name,
            "groups": groups,
            "charts": charts,
            "params": params,
            "options": options,
            "report": report,
            "errors": errors,
            "cards_url": _link(f"/console/cockpit/cards/{slug}", params),
            "drill": lambda kpi_id: _link("/console/cockpit/orders", params, kpi=kpi_id),
            "drills": {k for k in cards if k in kpis.FAMILIES[kpis.CATALOGUE[k].family].drill},
        }
        return page(request, "cockpit.html", context, status.HTTP_422_UNPROCESSABLE_CONTENT if errors else 200)

    def _form(request: Request, me: Me, engine: Any, slug: str | None, spec: dict[str, Any], name: str,
              shared_role: str | None, error: str = "", code: int = 200) -> HTMLResponse:  # fmt: skip
        charts = list(spec.get("charts", []))
        charts += [{"kpi": "", "by": "", "kind": "bar"}] * max(0, 6 - len(charts))
        context = {
            "me": me, "slug": slug, "name": name, "spec": spec, "charts": charts, "shared_role": shared_role or "",
            "catalogue": kpis.CATALOGUE, "dimensions": {k: kpis.dimensions_of(k) for k in kpis.CATALOGUE},
            "all_dimensions": sorted({d for k in kpis.CATALOGUE for d in kpis.dimensions_of(k)}),
            "kinds": CHART_KINDS, "roles": [r.value for r in Role], "error": error,
            "filter_names": ("period", "from", "to", *kpis.FILTERS),
        }  # fmt: skip
        return page(request, "cockpit_form.html", context, code)

    async def _save(request: Request, me: Me, engine: Any, slug: str | None) -> Response:
        form = await request.form()
        check_csrf(me, str(form.get("csrf", "")))
        text: dict[str, str] = {k: str(v) for k, v in form.multi_items() if isinstance(v, str)}
        name = text.get("name", "")
        cards = [str(v) for v in form.getlist("cards")]
        charts = []
        for n in range(dashboards.MAX_CHARTS):
            kpi_id = text.get(f"chart_kpi_{n}", "")
            if kpi_id:
                charts.append(
                    {"kpi": kpi_id, "by": text.get(f"chart_by_{n}", ""), "kind": text.get(f"chart_kind_{n}", "bar")}
                )
        filters = {f: text.get(f"filter_{f}", "") for f in ("period", "from", "to", *kpis.FILTERS)}
        spec = {"cards": cards, "charts": charts, "filters": {k: v for k, v in filters.items() if v}}
        shared = text.get("shared_role", "") or None
        try:
            with unit_of_work(engine) as session:
                saved = dashboards.save(session, me.user, name, spec, shared, now(), slug)
        except NotFound:
            return not_found(request, "no_such_cockpit")
        except CommandError as exc:
            return _form(request, me, engine, slug, spec, name, shared, str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
        return RedirectResponse(f"/console/cockpit/{saved.slug}", status.HTTP_303_SEE_OTHER)

    return router


def _orders_csv(kpi_id: str, rows: list[Any]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["order_no", "created_at", "customer_id", "customer", "channel", "sales_rep", "currency", "total",
                     "status"])  # fmt: skip
    for r in rows:
        writer.writerow([r.order_no, r.created_at.isoformat(), r.customer_id, r.customer_name, r.channel, r.sales_rep,
                         r.currency, str(r.total), r.status])  # fmt: skip
    name = quote(f"orders-{kpi_id}.csv")
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})  # fmt: skip
