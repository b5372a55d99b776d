"""What the cockpit's pages read besides the KPIs: the values each filter offers (within the asker's scope) and the
stamp that tells a page its figures may have moved."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlmodel import Session, col, select

from models.tables import (
    OrderFacts,
    Product,
    Shipment,
    Warehouse,
)
from services.queries.kpi_memory import data_version
from services.queries.kpis import KpiScope

OPTIONS_FOR = 60.0  # seconds a filter's values are kept: a new channel or region shows in the form within a minute
_options: dict[tuple[str, KpiScope], tuple[float, dict[str, list[str]]]] = {}
_options_lock = threading.Lock()


def filter_options(session: Session, scope: KpiScope) -> dict[str, list[str]]:
    """The values of each filter a person may pick: a sales rep only themselves, warehouse staff their warehouses.
    Kept a minute (each is a DISTINCT over every order: a third of a second on a million)."""
    key = (str(session.get_bind().engine.url), scope)
    with _options_lock:
        kept = _options.get(key)
    if kept is not None and time.monotonic() - kept[0] < OPTIONS_FOR:
        return {name: list(values) for name, values in kept[1].items()}
    options = _filter_options(session, scope)
    with _options_lock:
        _options[key] = (time.monotonic(), options)
    return {name: list(values) for name, values in options.items()}


def _filter_options(session: Session, scope: KpiScope) -> dict[str, list[str]]:
    warehouses = list(session.exec(select(Warehouse.code).order_by(col(Warehouse.code))).all())
    if scope.warehouses is not None:
        warehouses = [w for w in warehouses if w in scope.warehouses]
    reps = list(session.exec(select(OrderFacts.sales_rep).distinct().order_by(col(OrderFacts.sales_rep))).all())
    if scope.sales_rep is not None:
        reps = [scope.sales_rep]

    def distinct(column: Any) -> list[str]:
        return [v for v in session.exec(select(column).distinct().order_by(column)).all() if v]

    return {
        "channel": distinct(col(OrderFacts.channel)),
        "region": distinct(col(OrderFacts.region)),
        "warehouse": warehouses,
        "carrier": distinct(col(Shipment.carrier)),
        "product_line": distinct(col(Product.product_line)),
        "sales_rep": reps,
    }


def change_stamp(session: Session) -> str:
    """What the cockpit page polls: it fetches the figures again when this moves (services/queries/kpis.py)."""
    return data_version(session)
