"""GET /kpis (JSON) and GET /dashboard (one HTML page for managers, refreshing itself; no customer PII): ops,
finance and the finance director (admin) with a token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from jinja2 import Environment, select_autoescape
from sqlalchemy import Engine
from sqlmodel import col, select

from core.db import read_only
from entrypoints.api.auth import REPORT_READERS, engine_of, requires
from entrypoints.api.deps import Problem, problems
from models.tables import SalesOrder, User
from services.queries.kpis import kpi_report

EngineDep = Annotated[Engine, Depends(engine_of)]
ReaderDep = Annotated[User, Depends(requires(*REPORT_READERS))]

_PAGE = Environment(autoescape=select_autoescape(default=True)).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>orderflow dashboard</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .8em;text-align:left}th{background:#f4f4f4}</style></head>
<body><h1>orderflow</h1>
<p>{{ kpis.completed }} orders completed · lead time p50 {{ kpis.lead_time_seconds.p50 or "–" }} s,
p90 {{ kpis.lead_time_seconds.p90 or "–" }} s</p>
<h2>Orders by status</h2><table><tr><th>status</th><th>orders</th></tr>
{% for name, count in kpis.orders_by_status.items() %}<tr><td>{{ name }}</td><td>{{ count }}</td></tr>{% endfor %}
</table>
<h2>Mean seconds per stage (completed orders)</h2><table><tr><th>stage</th><th>seconds</th></tr>
{% for name, seconds in kpis.mean_stage_seconds.items() %}<tr><td>{{ name }}</td><td>{{ seconds }}</td></tr>{% endfor %}
</table>
<h2>Latest orders</h2><table><tr><th>order</th><th>channel</th><th>customer</th><th>total</th><th>status</th>
<th>updated</th></tr>
{% for o in latest %}<tr><td>{{ o.order_no }}</td><td>{{ o.channel }}</td><td>{{ o.customer_id }}</td>
<td>{{ o.currency }} {{ o.total }}</td><td>{{ o.status }}</td><td>{{ o.updated_at.isoformat() }}</td></tr>{% endfor %}
</table></body></html>"""
)


def dashboard_router() -> APIRouter:
    router = APIRouter(tags=["reports"])

    @router.get("/kpis", responses=problems(401, 403))
    def kpis(_user: ReaderDep, engine: EngineDep) -> dict[str, Any]:
        """Counts by status, lead time intake→completion (p50/p90), mean seconds per stage."""
        with read_only(engine) as session:
            return kpi_report(session)

    # An HTML page whose refusals are JSON: documented as such (FastAPI would list them as text/html).
    refusals = {
        code: {
            "description": info["description"],
            "content": {"application/json": {"schema": Problem.model_json_schema()}},
        }
        for code, info in problems(401, 403).items()
    }

    @router.get("/dashboard", response_class=HTMLResponse, responses=refusals)
    def dashboard(_user: ReaderDep, engine: EngineDep) -> str:
        with read_only(engine) as session:
            figures = kpi_report(session)
            latest = session.exec(select(SalesOrder).order_by(col(SalesOrder.updated_at).desc()).limit(20)).all()
            return _PAGE.render(kpis=figures, latest=latest)

    return router
