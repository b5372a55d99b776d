"""The order list: search (order no, customer, SKU, tracking no), filters, pages; a sales rep sees only their own.

Who may see which order is decided once here (`visible_to`), for the list and for the order page alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, String, cast, literal, or_
from sqlmodel import Session, SQLModel, col, func, select

from models.status import Role
from models.tables import Customer, PickList, Reservation, SalesOrder, Shipment

PAGE_SIZE = 50


@dataclass(frozen=True)
class OrderFilter:
    text: str = ""  # order no, customer id or name, SKU, tracking no (a part of any)
    status: str = ""
    channel: str = ""
    warehouse: str = ""
    created_from: date | None = None
    created_to: date | None = None  # inclusive
    page: int = 1


@dataclass(frozen=True)
class OrderRow:
    order_no: str
    created_at: datetime
    updated_at: datetime
    customer_id: str
    customer_name: str
    channel: str
    sales_rep: str
    currency: str
    total: Decimal
    status: str


@dataclass(frozen=True)
class OrderPage:
    rows: list[OrderRow]
    total: int
    page: int
    pages: int
    channels: list[str] = field(default_factory=list)


def visible_to(name: str, role: str) -> ColumnElement[bool]:
    """The orders a user may see: a sales rep their own; everyone else in the company all of them."""
    if role == Role.SALES.value:
        return col(SalesOrder.sales_rep) == name
    return col(SalesOrder.order_no).is_not(None)


def may_see(session: Session, order_no: str, name: str, role: str) -> bool:
    found = session.exec(
        select(SalesOrder.order_no).where(SalesOrder.order_no == order_no, visible_to(name, role))
    ).first()
    return found is not None


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(text: str) -> str:
    return f"%{_escaped(text)}%"


def _exists(table: type[SQLModel], *where: ColumnElement[bool]) -> ColumnElement[bool]:
    """A row of `table` related to the outer order (correlated to the orders table only)."""
    return select(literal(1)).select_from(table).where(*where).correlate(SalesOrder).exists()


def _conditions(flt: OrderFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    text = flt.text.strip()
    if text:
        pattern = _like(text)
        lowered = _like(text.lower())
        conditions.append(
            or_(
                col(SalesOrder.order_no).ilike(pattern, escape="\\"),
                col(SalesOrder.customer_id).ilike(pattern, escape="\\"),
                _exists(
                    Customer,
                    col(Customer.customer_id) == col(SalesOrder.customer_id),
                    func.lower(col(Customer.name)).like(lowered, escape="\\"),
                ),
                _exists(
                    Shipment,
                    col(Shipment.order_no) == col(SalesOrder.order_no),
                    col(Shipment.tracking_no).ilike(pattern, escape="\\"),
                ),
                # the lines' SKUs are in the canonical order as submitted
                cast(col(SalesOrder.payload), String).ilike(f'%"sku": "{_escaped(text)}%', escape="\\"),
            )
        )
    if flt.status:
        conditions.append(col(SalesOrder.status) == flt.status)
    if flt.channel:
        conditions.append(col(SalesOrder.channel) == flt.channel)
    if flt.warehouse:
        conditions.append(
            or_(
                _exists(
                    Reservation,
                    col(Reservation.order_no) == col(SalesOrder.order_no),
                    col(Reservation.warehouse) == flt.warehouse,
                ),
                _exists(
                    PickList,
                    col(PickList.order_no) == col(SalesOrder.order_no),
                    col(PickList.warehouse) == flt.warehouse,
                ),
            )
        )
    if flt.created_from is not None:
        conditions.append(col(SalesOrder.created_at) >= _midnight(flt.created_from))
    if flt.created_to is not None:
        conditions.append(col(SalesOrder.created_at) < _midnight(flt.created_to + timedelta(days=1)))
    return conditions


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _row(order: SalesOrder, customer_name: str | None) -> OrderRow:
    return OrderRow(
        order_no=order.order_no,
        created_at=order.created_at,
        updated_at=order.updated_at,
        customer_id=order.customer_id,
        customer_name=customer_name or order.customer_id,
        channel=order.channel,
        sales_rep=order.sales_rep,
        currency=order.currency,
        total=order.total,
        status=order.status,
    )


def drilled_rows(session: Session, order_nos: list[str]) -> list[OrderRow]:
    """These orders' rows, in the order given (a KPI's drill-down has chosen them, within the asker's scope)."""
    found: dict[str, OrderRow] = {}
    for chunk in range(0, len(order_nos), 900):
        query = (
            select(SalesOrder, Customer.name)
            .join(Customer, col(Customer.customer_id) == col(SalesOrder.customer_id), isouter=True)
            .where(col(SalesOrder.order_no).in_(order_nos[chunk : chunk + 900]))
        )
        for order, customer_name in session.exec(query).all():
            found[order.order_no] = _row(order, customer_name)
    return [found[n] for n in order_nos if n in found]


def order_list(session: Session, flt: OrderFilter, *, name: str, role: str) -> OrderPage:
    """One page of the orders `name` may see that match, newest first."""
    where = [visible_to(name, role), *_conditions(flt)]
    total = int(session.exec(select(func.count()).select_from(SalesOrder).where(*where)).one())
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(flt.page, 1), pages)
    found = session.exec(
        select(SalesOrder, Customer.name)
        .join(Customer, col(Customer.customer_id) == col(SalesOrder.customer_id), isouter=True)
        .where(*where)
        .order_by(col(SalesOrder.created_at).desc(), col(SalesOrder.order_no).desc())
        .offset((page - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    rows = [_row(order, customer_name) for order, customer_name in found]
    channels = sorted(session.exec(select(SalesOrder.channel).distinct()).all())
    return OrderPage(rows=rows, total=total, page=page, pages=pages, channels=channels)


def as_query(flt: OrderFilter, **changes: Any) -> dict[str, str]:
    """The filter as URL parameters (for the pager's links), with `changes` applied."""
    values = {
        "q": flt.text,
        "status": flt.status,
        "channel": flt.channel,
        "warehouse": flt.warehouse,
        "from": flt.created_from.isoformat() if flt.created_from else "",
        "to": flt.created_to.isoformat() if flt.created_to else "",
        "page": str(flt.page),
    }
    values.update({key: str(value) for key, value in changes.items()})
    return {key: value for key, value in values.items() if value}
