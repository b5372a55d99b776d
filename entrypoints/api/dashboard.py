"""GET /kpis (the catalogue's figures with the previous period's), GET /kpis/{kpi} (one KPI broken down by a
dimension: a chart's data) and GET /kpis/{kpi}/orders (the orders behind a figure). Every member of staff with a
token; what they count is their scope (services/queries/kpis.py `scope_of`: a sales rep their own orders,
warehouse staff their warehouses', everyone else all), enforced in the queries. /dashboard, the old page, now
sends people to the console's cockpit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import RedirectResponse
from sqlalchemy import Engine

from core.config import Settings
from core.db import read_only
from entrypoints.api.auth import KPI_READERS, engine_of, requires
from entrypoints.api.deps import problems, settings_of
from models.tables import User
from services.queries import kpis
from services.queries.kpi_request import BadKpiQuestion, breakdown_of, filters_of, kpi_of, kpis_of
from services.queries.order_list import drilled_rows

EngineDep = Annotated[Engine, Depends(engine_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
ReaderDep = Annotated[User, Depends(requires(*KPI_READERS))]
DRILL_LIMIT = 500


@contextmanager
def _asking(request: Request, engine: Engine, settings: Settings, user: User) -> Iterator[tuple[Any, kpis.Ask]]:
    """A read-only session and the question the query string asks, in the asker's scope (bad input: 422)."""
    with read_only(engine) as session:
        now = datetime.now(UTC)
        try:
            filters = filters_of(request.query_params, settings.business_zone, now)
        except BadKpiQuestion as exc:
            raise _refused(exc) from None
        yield session, kpis.Ask(filters, kpis.scope_of(session, user), settings.business_zone, now)


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


# The query parameters every KPI route takes (documented; read from the query string by filters_of).
Period = Annotated[str | None, Query(description="today, 7d, 30d (default), 90d, 365d or mtd")]
Day = Annotated[str | None, Query(description="a business day, 2026-12-01 (inclusive)")]
Dim = Annotated[str | None, Query(description="only this one (empty: all)")]


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["reports"])

    @router.get("/kpis", responses=problems(401, 403, 422))
    def kpi_report(
        request: Request,
        user: ReaderDep,
        engine: EngineDep,
        settings: SettingsDep,
        period: Period = None,
        from_: Annotated[Day, Query(alias="from")] = None,
        to: Day = None,
        channel: Dim = None,
        region: Dim = None,
        warehouse: Dim = None,
        carrier: Dim = None,
        product_line: Dim = None,
        sales_rep: Dim = None,
        currency: Annotated[str | None, Query(description="money KPIs count orders in it (CNY)")] = None,
        kpi: Annotated[str | None, Query(description="comma-separated KPI ids (default: all)")] = None,
    ) -> dict[str, Any]:
        """Every KPI of the catalogue (docs/kpis.md) for the period and filters, with the previous period's value
        and the trend; the period defaults to the last 30 days."""
        with _asking(request, engine, settings, user) as (session, ask):
            try:
                wanted = kpis_of(kpi)
            except BadKpiQuestion as exc:
                raise _refused(exc) from None
            return kpis.report(session, ask, wanted)

    @router.get("/kpis/{kpi_id}", responses=problems(401, 403, 422))
    def kpi_breakdown(
        kpi_id: str,
        request: Request,
        user: ReaderDep,
        engine: EngineDep,
        settings: SettingsDep,
        by: Annotated[str | None, Query(description="a dimension the KPI has (its first by default)")] = None,
        period: Period = None,
        from_: Annotated[Day, Query(alias="from")] = None,
        to: Day = None,
        channel: Dim = None,
        region: Dim = None,
        warehouse: Dim = None,
        carrier: Dim = None,
        product_line: Dim = None,
        sales_rep: Dim = None,
    ) -> dict[str, Any]:
        """One KPI per group of a dimension (day, week, month, channel, region, warehouse, carrier, product line,
        sales rep, stage, reason, age — as the KPI has them)."""
        with _asking(request, engine, settings, user) as (session, ask):
            try:
                dimension = breakdown_of(kpi_id, by)
            except BadKpiQuestion as exc:
                raise _refused(exc) from None
            return kpis.breakdown(session, ask, kpi_id, dimension)

    @router.get("/kpis/{kpi_id}/orders", responses=problems(401, 403, 422))
    def kpi_orders(
        kpi_id: str,
        request: Request,
        user: ReaderDep,
        engine: EngineDep,
        settings: SettingsDep,
        by: Annotated[str | None, Query(description="the breakdown the group is of")] = None,
        group: Annotated[str | None, Query(description="a bar or slice of that breakdown")] = None,
        period: Period = None,
        from_: Annotated[Day, Query(alias="from")] = None,
        to: Day = None,
        channel: Dim = None,
        region: Dim = None,
        warehouse: Dim = None,
        carrier: Dim = None,
        product_line: Dim = None,
        sales_rep: Dim = None,
    ) -> dict[str, Any]:
        """The orders a figure counted that make it worse (the slowest, those that missed the promise), worst
        first, at most 500."""
        with _asking(request, engine, settings, user) as (session, ask):
            try:
                kpi_of(kpi_id)
                dimension = breakdown_of(kpi_id, by) if by else None
                numbers = kpis.drill(session, ask, kpi_id, dimension, group if dimension else None)
            except (BadKpiQuestion, ValueError) as exc:
                raise _refused(exc) from None
            rows = drilled_rows(session, numbers[:DRILL_LIMIT])
            return {
                "kpi": kpi_id,
                "by": dimension,
                "group": group if dimension else None,
                "count": len(numbers),
                "orders": [
                    {"order_no": r.order_no, "status": r.status, "channel": r.channel, "sales_rep": r.sales_rep,
                     "total": str(r.total), "currency": r.currency, "created_at": r.created_at.isoformat()}
                    for r in rows
                ],
            }  # fmt: skip

    @router.get(
        "/dashboard",
        response_class=RedirectResponse,
        status_code=status.HTTP_308_PERMANENT_REDIRECT,
        responses={308: {"description": "to /console/cockpit", "content": None}},
    )
    def dashboard() -> RedirectResponse:
        """The managers' page is the console's cockpit now (it asks for a sign-in)."""
        return RedirectResponse("/console/cockpit", status_code=status.HTTP_308_PERMANENT_REDIRECT)

    return router
