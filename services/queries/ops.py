"""Ops' exceptions (the console's /console/ops and its inbox card): what is stuck or broken, oldest first —
delivery exceptions, parcels without carrier news, failed orders, backorders waiting for stock, orders past
their stage's SLA (domain/stage_sla.py), and the open purchase requisitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_
from sqlmodel import Session, col, func, select

from domain.customer_view import PARCEL_DONE
from domain.stage_sla import STAGE_SLA, sla_breach
from models.status import OrderStatus
from models.tables import OrderEvent, PurchaseRequisition, RequisitionState, SalesOrder, Shipment, TrackingEvent

LIST_LIMIT = 200
# A failed order stays on the list this long (it has ended: someone must see why, then it drops off).
FAILED_SHOWN_FOR = timedelta(days=14)


@dataclass(frozen=True)
class OrderException:
    order_no: str
    status: str
    since: datetime
    detail: str  # the last event's detail: the failure, the shortage, the carrier's problem
    late_by: timedelta | None = None  # past its stage's SLA


@dataclass(frozen=True)
class QuietParcel:
    order_no: str
    carrier: str
    tracking_no: str
    status: str
    last_news: datetime


@dataclass(frozen=True)
class OpsExceptions:
    delivery_exceptions: list[OrderException]
    quiet_parcels: list[QuietParcel]
    failed: list[OrderException]
    backorders: list[OrderException]
    late: list[OrderException]
    requisitions: list[PurchaseRequisition]

    @property
    def count(self) -> int:
        return sum(
            len(items)
            for items in (self.delivery_exceptions, self.quiet_parcels, self.failed, self.backorders, self.late)
        )


def _last_details(session: Session, orders: list[SalesOrder]) -> dict[str, str]:
    """Each order's latest event detail, one query."""
    if not orders:
        return {}
    latest = (
        select(OrderEvent.order_no, func.max(OrderEvent.seq).label("seq"))
        .where(col(OrderEvent.order_no).in_([o.order_no for o in orders]))
        .group_by(col(OrderEvent.order_no))
        .subquery()
    )
    rows = session.exec(
        select(OrderEvent).join(
            latest, (col(OrderEvent.order_no) == latest.c.order_no) & (col(OrderEvent.seq) == latest.c.seq)
        )
    ).all()
    return {row.order_no: row.detail for row in rows}


def _in_status(session: Session, status: OrderStatus, *, after: datetime | None = None) -> list[OrderException]:
    orders = list(
        session.exec(
            select(SalesOrder)
            .where(*_status_conditions(status, after))
            .order_by(col(SalesOrder.updated_at))
            .limit(LIST_LIMIT)
        ).all()
    )
    details = _last_details(session, orders)
    return [OrderException(o.order_no, o.status, o.updated_at, details.get(o.order_no, "")) for o in orders]


def _status_conditions(status: OrderStatus, after: datetime | None = None) -> list[ColumnElement[bool]]:
    where = [col(SalesOrder.status) == status.value]
    if after is not None:
        where.append(col(SalesOrder.updated_at) >= after)
    return where


def _late_condition(now: datetime) -> ColumnElement[bool]:
    """In a stage longer than its SLA allows (domain/stage_sla.py)."""
    return or_(
        *(
            and_(col(SalesOrder.status) == status.value, col(SalesOrder.updated_at) < now - allowed)
            for status, allowed in STAGE_SLA.items()
        )
    )


def _late(session: Session, now: datetime) -> list[OrderException]:
    orders = session.exec(
        select(SalesOrder).where(_late_condition(now)).order_by(col(SalesOrder.updated_at)).limit(LIST_LIMIT)
    ).all()
    return [
        OrderException(o.order_no, o.status, o.updated_at, "", sla_breach(o.status, o.updated_at, now)) for o in orders
    ]


# A parcel's latest carrier news (the (carrier, tracking_no, …) unique index answers it per parcel).
_LAST_NEWS = (
    select(func.max(TrackingEvent.at))
    .where(
        col(TrackingEvent.carrier) == col(Shipment.carrier), col(TrackingEvent.tracking_no) == col(Shipment.tracking_no)
    )
    .correlate(Shipment)
    .scalar_subquery()
)


def _quiet_conditions(now: datetime, quiet_after: timedelta) -> list[ColumnElement[bool]]:
    """On its way, and no carrier news (or none since dispatch) for `quiet_after`."""
    return [
        col(Shipment.status).not_in([s.value for s in PARCEL_DONE]),
        func.coalesce(_LAST_NEWS, col(Shipment.dispatched_at)) < now - quiet_after,
    ]


def _quiet_parcels(session: Session, now: datetime, quiet_after: timedelta) -> list[QuietParcel]:
    rows = session.exec(
        select(Shipment, _LAST_NEWS)
        .where(*_quiet_conditions(now, quiet_after))
        .order_by(func.coalesce(_LAST_NEWS, col(Shipment.dispatched_at)))
        .limit(LIST_LIMIT)
    ).all()
    return [QuietParcel(s.order_no, s.carrier, s.tracking_no, s.status, at or s.dispatched_at) for s, at in rows]


def ops_exception_count(session: Session, now: datetime, *, quiet_after: timedelta) -> int:
    """What `ops_exceptions(...).count` counts, by counting (the inbox's badge, polled every few seconds), without
    the page's cap of LIST_LIMIT a list."""

    def orders(*where: ColumnElement[bool]) -> int:
        return int(session.exec(select(func.count()).select_from(SalesOrder).where(*where)).one())

    parcels = session.exec(select(func.count()).select_from(Shipment).where(*_quiet_conditions(now, quiet_after)))
    return (
        orders(*_status_conditions(OrderStatus.DELIVERY_EXCEPTION))
        + int(parcels.one())
        + orders(*_status_conditions(OrderStatus.FAILED, now - FAILED_SHOWN_FOR))
        + orders(*_status_conditions(OrderStatus.BACKORDERED))
        + orders(_late_condition(now))
    )


def ops_exceptions(session: Session, now: datetime, *, quiet_after: timedelta) -> OpsExceptions:
    return OpsExceptions(
        delivery_exceptions=_in_status(session, OrderStatus.DELIVERY_EXCEPTION),
        quiet_parcels=_quiet_parcels(session, now, quiet_after),
        failed=_in_status(session, OrderStatus.FAILED, after=now - FAILED_SHOWN_FOR),
        backorders=_in_status(session, OrderStatus.BACKORDERED),
        late=_late(session, now),
        requisitions=list(
            session.exec(
                select(PurchaseRequisition)
                .where(PurchaseRequisition.state == RequisitionState.OPEN)
                .order_by(col(PurchaseRequisition.created_at))
                .limit(LIST_LIMIT)
            ).all()
        ),
    )
