"""What the cockpit's pages read besides the KPIs: the values each filter offers (within the asker's scope) and the
stamp that tells a page its figures may have moved."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.tables import (
    OrderFacts,
    Product,
    Shipment,
    Warehouse,
)
from services.queries.kpis import KpiScope, data_version


def filter_options(session: Session, scope: KpiScope) -> dict[str, list[str]]:
    """The values of each filter a person may pick: a sales rep only themselves, warehouse staff their warehouses."""
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
