"""Pick lists for the warehouse: the open ones of a person's warehouses (oldest first), and one list with what its
parcel needs (the delivery note: ship-to, lines). Who may handle which list is decided here, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from models.status import Role
from models.tables import PickList, SalesOrder, UserWarehouse

STAFF_ROLES = {Role.WAREHOUSE.value}
ALL_WAREHOUSES_ROLES = {Role.OPS.value, Role.ADMIN.value}


def handled_warehouses(session: Session, name: str, role: str) -> set[str] | None:
    """The warehouses whose lists `name` may pick and dispatch; None: every warehouse (ops, admin)."""
    if role in ALL_WAREHOUSES_ROLES:
        return None
    if role not in STAFF_ROLES:
        return set()
    return set(session.exec(select(UserWarehouse.warehouse).where(UserWarehouse.user_name == name)).all())


@dataclass(frozen=True)
class PickTodo:
    id: int
    order_no: str
    warehouse: str
    created_at: datetime
    lines: int
    units: int
    picked_by: str | None


def open_pick_lists(session: Session, name: str, role: str, *, limit: int = 200) -> list[PickTodo]:
    mine = handled_warehouses(session, name, role)
    if mine is not None and not mine:
        return []
    query = select(PickList).where(PickList.state == "issued")
    if mine is not None:
        query = query.where(col(PickList.warehouse).in_(sorted(mine)))
    rows = session.exec(query.order_by(col(PickList.created_at), col(PickList.id)).limit(limit)).all()
    return [
        PickTodo(
            id=row.id or 0,
            order_no=row.order_no,
            warehouse=row.warehouse,
            created_at=row.created_at,
            lines=len(row.lines),
            units=sum(int(line["qty"]) for line in row.lines),
            picked_by=row.picked_by,
        )
        for row in rows
    ]


def pick_list_page(session: Session, pick_list_id: int, name: str, role: str) -> dict[str, Any] | None:
    """The list with its order's delivery details; None when it does not exist or is not this person's."""
    found = session.get(PickList, pick_list_id)
    if found is None:
        return None
    mine = handled_warehouses(session, name, role)
    if mine is not None and found.warehouse not in mine:
        return None
    order = session.get(SalesOrder, found.order_no)
    payload = order.payload if order else {}
    return {
        "id": found.id,
        "order_no": found.order_no,
        "warehouse": found.warehouse,
        "state": found.state,
        "created_at": found.created_at,
        "picked_by": found.picked_by,
        "picked_at": found.picked_at,
        "lines": found.lines,  # in walking order (bin path), as issued
        "order_status": order.status if order else "",
        "ship_to": payload.get("ship_to", {}),
        "customer_id": order.customer_id if order else "",
        "currency": order.currency if order else "",
    }
