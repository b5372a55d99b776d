"""The KPI catalogue: every fulfilment KPI the cockpit, `GET /kpis` and `orderflow report` show, each defined once
here with its definition beside it (docs/kpis.md is generated from `CATALOGUE`: `make kpi-docs`).

How a figure is made: SQL picks the rows a KPI counts — the period, the filters and the asker's scope (a sales rep's
orders, a warehouse's) are WHERE clauses, on SQLite and Postgres alike — and the arithmetic over those rows is
domain/kpis.py's. The rows are also the drill-down: `drill` lists the very orders a figure counted.

The read model is models/tables.py OrderFacts, OrderStageTime and OrderLineRow (kept by services/order_facts.py),
the shipments and their carrier events, the stock lots, reservations and receipts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, and_, case, func, join, literal, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, SQLModel, col, select

from core.db import read_only
from domain.kpis import (
    AGE_BUCKETS,
    TREND_TOLERANCE,
    Grain,
    Period,
    age_bucket,
    average_amount,
    bucket,
    closing_levels,
    nearest_rank,
    percentile,
    rate,
    ratio,
    stage_times,
    stop_reason,
    trend,
)
from domain.replenishment import reorder_needs
from domain.stage_sla import STAGE_SLA
from models.status import NEVER_BILLED, OrderStatus, Role, TrackingStatus
from models.tables import (
    OrderEvent,
    OrderFacts,
    OrderLineRow,
    OrderStageTime,
    PickList,
    Product,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
    StockLot,
    StockReceipt,
    TrackingEvent,
    User,
    UserWarehouse,
)
from services.queries import kpi_memory
from services.queries.availability import available_by_pair
from services.queries.sql_functions import local_date, seconds_between

T = TypeVar("T")
Unit = Literal["seconds", "ratio", "money", "count", "times", "hours"]
FILTERS = ("channel", "region", "warehouse", "carrier", "product_line", "sales_rep")
TIME_GRAINS = ("day", "week", "month")
ZERO = Decimal("0.00")


# --- what is asked ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiFilters:
    """The period (business days) and the dimensions a figure is narrowed to; None: all."""

    period: Period
    channel: str | None = None
    region: str | None = None
    warehouse: str | None = None
    carrier: str | None = None
    product_line: str | None = None
    sales_rep: str | None = None
    currency: str = "CNY"  # money KPIs add up orders in this currency only

    def given(self) -> dict[str, str]:
        return {name: value for name in FILTERS if (value := getattr(self, name)) is not None}


@dataclass(frozen=True)
class KpiScope:
    """What the asker may count, enforced in every query: a sales rep their own orders, warehouse staff their
    warehouses' orders and stock; finance, ops and management everything (both None)."""

    sales_rep: str | None = None
    warehouses: frozenset[str] | None = None

    def describe(self) -> str:
        if self.sales_rep is not None:
            return f"orders of sales rep {self.sales_rep}"
        if self.warehouses is not None:
            return "orders and stock of " + (", ".join(sorted(self.warehouses)) or "no warehouse")
        return "everything"


EVERYTHING = KpiScope()


def scope_of(session: Session, user: User) -> KpiScope:
    """The scope of a member of staff, from their role (and, for warehouse staff, the warehouses they work in)."""
    if user.role == Role.SALES.value:
        return KpiScope(sales_rep=user.name)
    if user.role == Role.WAREHOUSE.value:
        codes = session.exec(select(UserWarehouse.warehouse).where(UserWarehouse.user_name == user.name)).all()
        return KpiScope(warehouses=frozenset(codes))
    return EVERYTHING


@dataclass(frozen=True)
class Ask:
    filters: KpiFilters
    scope: KpiScope
    zone: ZoneInfo
    now: datetime

    def window(self, period: Period | None = None) -> tuple[datetime, datetime]:
        """The period as UTC instants: from the first day's midnight to the midnight after the last, in the zone."""
        p = period or self.filters.period
        start = datetime.combine(p.first, time(0), self.zone).astimezone(UTC)
        end = datetime.combine(p.last + timedelta(days=1), time(0), self.zone).astimezone(UTC)
        return start, end

    def day(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def previous(self) -> Ask:
        return replace(self, filters=replace(self.filters, period=self.filters.period.previous()))


# --- rows: what a figure counts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One counted thing (an order, a stage visit, a parcel) of a family of KPIs: its group under `by`, when it
    counts (its anchor), and the values the arithmetic needs."""

    order_no: str
    group: str
    at: datetime | date
    values: dict[str, Any] = field(default_factory=dict)


def _exists(table: type[SQLModel], *where: ColumnElement[bool]) -> ColumnElement[bool]:
    return select(literal(1)).select_from(table).where(*where).correlate(OrderFacts).exists()


def _warehouse_link(codes: Iterable[str]) -> ColumnElement[bool]:
    return _exists(
        PickList,
        col(PickList.order_no) == col(OrderFacts.order_no),
        col(PickList.state) != "voided",
        col(PickList.warehouse).in_(sorted(codes)),
    )


def _order_conditions(ask: Ask, *, lines_filtered: bool = False) -> list[ColumnElement[bool]]:
    """The filters and the scope over OrderFacts. `lines_filtered`: the caller narrows lines to the product line."""
    f, where = ask.filters, []
    for name in ("channel", "region", "sales_rep"):
        if (value := getattr(f, name)) is not None:
            where.append(getattr(OrderFacts, name) == value)
    if f.warehouse is not None:
        where.append(_warehouse_link([f.warehouse]))
    if f.carrier is not None:
        where.append(
            _exists(Shipment, col(Shipment.order_no) == col(OrderFacts.order_no), col(Shipment.carrier) == f.carrier)
        )
    if f.product_line is not None and not lines_filtered:
        where.append(
            _exists(
                OrderLineRow,
                col(OrderLineRow.order_no) == col(OrderFacts.order_no),
                col(OrderLineRow.sku).in_(
                    select(Product.sku).where(col(Product.product_line) == f.product_line).scalar_subquery()
                ),
            )
        )
    if ask.scope.sales_rep is not None:
        where.append(col(OrderFacts.sales_rep) == ask.scope.sales_rep)
    if ask.scope.warehouses is not None:
        where.append(_warehouse_link(ask.scope.warehouses))
    return where


# The rules a figure counts by, as SQL: the rows that breakdowns and drill-downs fetch carry their verdicts, and the
# cards' totals (below, "totals in the database") sum them, so each rule has one definition.
ON_TIME_DISPATCH = col(OrderFacts.dispatched_at) <= col(OrderFacts.dispatch_by)  # left by the promised date
DISPATCH_COUNTED = (col(OrderFacts.dispatch_by).is_not(None),)  # registered with a promise
IN_FULL = col(OrderFacts.units_shipped) >= col(OrderFacts.units)  # every ordered unit shipped
OTIF = and_(col(OrderFacts.dispatch_by).is_not(None), ON_TIME_DISPATCH, IN_FULL)
PERFECT = and_(OTIF, col(OrderFacts.returned).is_(False), col(OrderFacts.status) == OrderStatus.COMPLETED.value)
DELIVERY_ENDED = (
    col(OrderFacts.dispatched_at).is_not(None),
    col(OrderFacts.status).in_([OrderStatus.COMPLETED.value, OrderStatus.FAILED.value]),
)
FILL_COUNTED = (col(OrderFacts.units_short_first).is_not(None),)  # a first allocation was tried
FILLED = col(OrderFacts.units_short_first) == 0  # it found every unit


def _flag(rule: ColumnElement[bool]) -> Any:
    """1 where the rule holds, else 0 (as both databases sum it)."""
    return case((rule, 1), else_=0)


def _groups(session: Session, by: str, order_nos: Sequence[str]) -> dict[str, list[str]]:
    """For the multi-valued dimensions: each order's warehouses, carriers or product lines (an order in two counts
    in each)."""
    out: dict[str, list[str]] = defaultdict(list)
    for chunk in range(0, len(order_nos), 900):
        part = list(order_nos[chunk : chunk + 900])
        if by == "warehouse":
            query: Any = sa_select(col(PickList.order_no), col(PickList.warehouse)).where(
                col(PickList.order_no).in_(part), col(PickList.state) != "voided"
            )
        elif by == "carrier":
            query = select(Shipment.order_no, Shipment.carrier).where(col(Shipment.order_no).in_(part))
        else:
            query = (
                select(OrderLineRow.order_no, Product.product_line)
                .join(Product, col(Product.sku) == col(OrderLineRow.sku))
                .where(col(OrderLineRow.order_no).in_(part))
            )
        for order_no, key in session.execute(query).all():
            if key not in out[order_no]:
                out[order_no].append(key)
    return out


def _order_rows(
    session: Session,
    ask: Ask,
    by: str | None,
    anchor: Any,
    columns: dict[str, Any],
    *where: ColumnElement[bool],
    period: Period | None = None,
) -> list[Row]:
    """The orders whose `anchor` falls in the period and that pass the filters and scope, with `columns`, grouped
    `by` a dimension (a time grain of the anchor, a column, or a multi-valued link)."""
    start, end = ask.window(period)
    names = list(columns)
    query: Any = sa_select(
        col(OrderFacts.order_no),
        anchor,
        col(OrderFacts.channel),
        col(OrderFacts.region),
        col(OrderFacts.sales_rep),
        *columns.values(),
    ).where(anchor >= start, anchor < end, *_order_conditions(ask), *where)
    fetched = session.execute(query).all()
    links = _groups(session, by, [r[0] for r in fetched]) if by in ("warehouse", "carrier", "product_line") else {}
    rows: list[Row] = []
    for order_no, at, channel, region, rep, *values in fetched:
        base = dict(zip(names, values, strict=True))
        for group in _group_keys(
            ask, by, at, {"channel": channel, "region": region, "sales_rep": rep}, links, order_no
        ):
            rows.append(Row(order_no, group, at, base))
    return rows


def _group_keys(
    ask: Ask, by: str | None, at: datetime | date, columns: dict[str, str], links: dict[str, list[str]], order_no: str
) -> list[str]:
    if by is None:
        return [""]
    if by in TIME_GRAINS:
        day = ask.day(at) if isinstance(at, datetime) else at
        grain: Grain = by  # type: ignore[assignment]
        return [bucket(day, grain).isoformat()]
    if by in columns:
        return [columns[by] or "(none)"]
    return links.get(order_no, []) or ["(none)"]


def _by_group(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        out[row.group].append(row)
    return dict(out)


# --- the catalogue ---------------------------------------------------------------------------------------------

Value = float | Decimal | int | None
Figures = dict[str, dict[str, Value]]  # group → KPI id → value (group "" when not broken down)


@dataclass(frozen=True)
class Family:
    """KPIs computed from the same rows: `rows` picks them, `figures` does the arithmetic of one group's rows."""

    name: str
    dimensions: tuple[str, ...]  # what it may be broken down by (besides its own)
    rows: Callable[[Session, Ask, str | None], list[Row]]
    figures: Callable[[list[Row], Ask], dict[str, Value]]
    # Which rows a KPI's drill-down lists, worst first: (include?, sort key).
    drill: dict[str, tuple[Callable[[Row], bool], Callable[[Row], Any]]] = field(default_factory=dict)
    filters: tuple[str, ...] = FILTERS  # the filters that apply to it
    # Its figures computed by the database, in total (by None: the cards) or per group; None: from the rows.
    totals: Callable[[Session, Ask, str | None], Figures | None] | None = None


@dataclass(frozen=True)
class Kpi:
    id: str
    group: str  # flow | sales | stock | carriers
    title: str
    unit: Unit
    better: Literal["up", "down"]
    definition: str
    family: str


ORDER_DIMENSIONS = ("day", "week", "month", "channel", "region", "warehouse", "carrier", "product_line", "sales_rep")


def _p50_p90(prefix: str) -> Callable[[list[Row], Ask], dict[str, Value]]:
    """The arithmetic of a time family: p50 and p90 of its rows' seconds (nearest rank)."""

    def figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
        seconds = [r.values["seconds"] for r in rows]
        return {f"{prefix}_p50": percentile(seconds, 0.5), f"{prefix}_p90": percentile(seconds, 0.9)}

    return figures


# flow: cycle time ---------------------------------------------------------------------------------------------


def _cycle_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _order_rows(
        session,
        ask,
        by,
        col(OrderFacts.completed_at),
        {"seconds": col(OrderFacts.cycle_seconds)},
        col(OrderFacts.cycle_seconds).is_not(None),
    )


_cycle_figures = _p50_p90("cycle_time")


# flow: dwell per stage ----------------------------------------------------------------------------------------


def _stage_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Stage visits that ended in the period, grouped by stage (or by `by` across all stages)."""
    start, end = ask.window()
    query: Any = (
        sa_select(
            col(OrderStageTime.order_no),
            col(OrderStageTime.stage),
            col(OrderStageTime.left_at),
            col(OrderStageTime.seconds),
            col(OrderFacts.channel),
            col(OrderFacts.region),
            col(OrderFacts.sales_rep),
        )
        .join(OrderFacts, col(OrderFacts.order_no) == col(OrderStageTime.order_no))
        .where(col(OrderStageTime.left_at) >= start, col(OrderStageTime.left_at) < end, *_order_conditions(ask))
    )
    fetched = session.execute(query).all()
    multi = by in ("warehouse", "carrier", "product_line")
    links = _groups(session, by or "", sorted({r[0] for r in fetched})) if multi else {}
    rows: list[Row] = []
    for order_no, stage, left, seconds, channel, region, rep in fetched:
        columns = {"channel": channel, "region": region, "sales_rep": rep}
        keys = [stage] if by in (None, "stage") else _group_keys(ask, by, left, columns, links, order_no)
        rows.extend(Row(order_no, key, left, {"seconds": seconds, "stage": stage}) for key in keys)
    return rows


_stage_figures = _p50_p90("stage_dwell")


# flow: approval wait ------------------------------------------------------------------------------------------


def _approval_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _order_rows(
        session,
        ask,
        by,
        col(OrderFacts.approval_ended_at),
        {"seconds": col(OrderFacts.approval_wait_seconds)},
        col(OrderFacts.approval_wait_seconds).is_not(None),
    )


_approval_figures = _p50_p90("approval_wait")


# flow: stuck past a stage SLA (now, not the period) -----------------------------------------------------------


def _stuck_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Open orders in a stage with an SLA (domain/stage_sla.py) longer than it allows, as of now."""
    newest = ask.now - min(STAGE_SLA.values())  # no order in since later than this can be past any SLA
    query: Any = sa_select(
        col(OrderFacts.order_no),
        col(OrderFacts.status),
        col(OrderFacts.status_since),
        col(OrderFacts.channel),
        col(OrderFacts.region),
        col(OrderFacts.sales_rep),
    ).where(
        col(OrderFacts.status).in_([s.value for s in STAGE_SLA]),
        col(OrderFacts.status_since) < newest,
        *_order_conditions(ask),
    )
    fetched = session.execute(query).all()
    multi = by in ("warehouse", "carrier", "product_line")
    links = _groups(session, by or "", [r[0] for r in fetched]) if multi else {}
    rows: list[Row] = []
    for order_no, status, since, channel, region, rep in fetched:
        over = ask.now - since - STAGE_SLA[OrderStatus(status)]
        if over <= timedelta(0):
            continue
        columns = {"channel": channel, "region": region, "sales_rep": rep}
        keys = [status] if by in (None, "stage") else _group_keys(ask, by, since, columns, links, order_no)
        rows.extend(Row(order_no, key, since, {"over": over.total_seconds(), "stage": status}) for key in keys)
    return rows


def _stuck_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return {"stuck_orders": len({r.order_no for r in rows})}


# flow: on-time dispatch ---------------------------------------------------------------------------------------


def _dispatch_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _order_rows(
        session,
        ask,
        by,
        col(OrderFacts.dispatched_at),
        {"dispatch_by": col(OrderFacts.dispatch_by), "on_time": _flag(ON_TIME_DISPATCH)},
        *DISPATCH_COUNTED,
    )


def _on_time(row: Row) -> bool:
    return bool(row.values["on_time"])


def _dispatch_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return {"on_time_dispatch_rate": rate(sum(1 for r in rows if _on_time(r)), len(rows))}


# flow: OTIF and the perfect order -----------------------------------------------------------------------------


def _delivery_end_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Orders whose delivery ended in the period: COMPLETED, or FAILED after something was dispatched."""
    return _order_rows(
        session,
        ask,
        by,
        col(OrderFacts.ended_at),
        {"otif": _flag(OTIF), "perfect": _flag(PERFECT)},
        *DELIVERY_ENDED,
    )


def _otif(row: Row) -> bool:
    return bool(row.values["otif"])


def _perfect(row: Row) -> bool:
    return bool(row.values["perfect"])


def _delivery_end_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return {
        "otif_rate": rate(sum(1 for r in rows if _otif(r)), len(rows)),
        "perfect_order_rate": rate(sum(1 for r in rows if _perfect(r)), len(rows)),
    }


# flow: fill rates and backorders; cancellations and rejections (orders received in the period) ----------------


def _fill_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _order_rows(
        session,
        ask,
        by,
        col(OrderFacts.received_at),
        FILL_MEASURES,
        *FILL_COUNTED,
    )


def _fill_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return _fill_from(len(rows), {k: sum(int(r.values[k]) for r in rows) for k in FILL_MEASURES})


FILL_MEASURES = {
    "lines": col(OrderFacts.lines),
    "units": col(OrderFacts.units),
    "lines_short": col(OrderFacts.lines_short_first),
    "units_short": col(OrderFacts.units_short_first),
    "filled": _flag(FILLED),
    "backordered": _flag(col(OrderFacts.backordered).is_(True)),
}


def _fill_from(orders: int, sums: dict[str, int]) -> dict[str, Value]:
    return {
        "order_fill_rate": rate(sums["filled"], orders),
        "line_fill_rate": rate(sums["lines"] - sums["lines_short"], sums["lines"]),
        "unit_fill_rate": rate(sums["units"] - sums["units_short"], sums["units"]),
        "backorder_rate": rate(sums["backordered"], orders),
    }


def _stop_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Orders received in the period with their status. By reason: only the stopped ones, under each of their
    reasons, each carrying how many orders the period received (a reason's rate is of all of them)."""
    rows = _order_rows(
        session, ask, by if by != "reason" else None, col(OrderFacts.received_at), {"status": col(OrderFacts.status)}
    )
    if by != "reason":
        return rows
    whole = len({r.order_no for r in rows})
    stopped = [r for r in rows if r.values["status"] in (OrderStatus.CANCELLED, OrderStatus.REJECTED)]
    reasons = _reasons(session, [r.order_no for r in stopped])
    return [
        Row(r.order_no, key, r.at, {**r.values, "whole": whole})
        for r in stopped
        for key in dict.fromkeys(reasons.get(r.order_no) or ["(none)"])
    ]


def _reasons(session: Session, order_nos: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for chunk in range(0, len(order_nos), 900):
        query = select(SalesOrder.order_no, SalesOrder.reasons).where(
            col(SalesOrder.order_no).in_(list(order_nos[chunk : chunk + 900]))
        )
        for order_no, reasons in session.execute(query).all():
            out[order_no] = [stop_reason(r) for r in reasons] or ["(none)"]
    return out


def _stop_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    orders = {r.order_no: r.values["status"] for r in rows}
    whole = rows[0].values.get("whole", len(orders)) if rows else 0
    return {
        "cancellation_rate": rate(sum(1 for s in orders.values() if s == OrderStatus.CANCELLED), whole),
        "rejection_rate": rate(sum(1 for s in orders.values() if s == OrderStatus.REJECTED), whole),
    }


# sales --------------------------------------------------------------------------------------------------------


def _sales_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Orders received in the period that will bill (not rejected, cancelled or failed), in the currency asked
    for. Broken down or filtered by product line, an order counts with its lines of that line only."""
    f = ask.filters
    start, end = ask.window()
    where = [col(OrderFacts.received_at) >= start, col(OrderFacts.received_at) < end, *_billed(f.currency)]
    if by != "product_line" and f.product_line is None:
        return _order_rows(
            session,
            ask,
            by,
            col(OrderFacts.received_at),
            {"amount": col(OrderFacts.total)},
            *where[2:],
        )
    query: Any = (
        sa_select(
            col(OrderFacts.order_no),
            col(OrderFacts.received_at),
            col(OrderFacts.channel),
            col(OrderFacts.region),
            col(OrderFacts.sales_rep),
            col(Product.product_line),
            col(OrderLineRow.amount),
        )
        .join(OrderLineRow, col(OrderLineRow.order_no) == col(OrderFacts.order_no))
        .join(Product, col(Product.sku) == col(OrderLineRow.sku))
        .where(*where, *_order_conditions(ask, lines_filtered=True))
    )
    if f.product_line is not None:
        query = query.where(col(Product.product_line) == f.product_line)
    fetched = session.execute(query).all()
    links = _groups(session, by, sorted({r[0] for r in fetched})) if by in ("warehouse", "carrier") else {}
    rows: list[Row] = []
    for order_no, at, channel, region, rep, line, amount in fetched:
        columns = {"channel": channel, "region": region, "sales_rep": rep, "product_line": line}
        rows.extend(
            Row(order_no, key, at, {"amount": amount}) for key in _group_keys(ask, by, at, columns, links, order_no)
        )
    return rows


def _sales_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return _sales_from(len({r.order_no for r in rows}), sum((r.values["amount"] for r in rows), ZERO))


def _sales_from(orders: int, amount: Decimal) -> dict[str, Value]:
    return {"sales_amount": amount, "order_count": orders, "average_order_value": average_amount(amount, orders)}


def _billed(currency: str) -> tuple[ColumnElement[bool], ...]:
    """Orders that will bill (not rejected, cancelled or failed), in the currency asked for."""
    return (col(OrderFacts.status).not_in([s.value for s in NEVER_BILLED]), col(OrderFacts.currency) == currency)


# stock --------------------------------------------------------------------------------------------------------


def _stock_pairs(session: Session, ask: Ask) -> dict[tuple[str, str], StockPair]:
    """The (warehouse, SKU) pairs stocked (a lot was ever received) of active products, within the filters (a
    warehouse, a product line) and the scope (warehouse staff's warehouses); with the lot they first had."""
    f = ask.filters
    pair = (col(StockLot.warehouse), col(StockLot.sku), col(Product.unit_cost), col(Product.reorder_level))
    query: Any = (
        sa_select(*pair, func.min(col(StockLot.received_at)), func.sum(col(StockLot.on_hand)))
        .join(Product, col(Product.sku) == col(StockLot.sku))
        .where(col(Product.active).is_(True))
        .group_by(*pair)
    )
    if f.warehouse is not None:
        query = query.where(col(StockLot.warehouse) == f.warehouse)
    if f.product_line is not None:
        query = query.where(col(Product.product_line) == f.product_line)
    if ask.scope.warehouses is not None:
        query = query.where(col(StockLot.warehouse).in_(sorted(ask.scope.warehouses)))
    if ask.scope.sales_rep is not None:
        return {}  # stock is nobody's orders: a sales rep's scope holds none
    return {
        (warehouse, sku): StockPair(ask.day(first), int(on_hand), cost, level)
        for warehouse, sku, cost, level, first, on_hand in session.execute(query).all()
    }


@dataclass
class StockPair:
    first_day: date  # its first lot's receipt
    on_hand: int  # now
    unit_cost: Decimal | None
    reorder_level: int


def _movements(
    session: Session, ask: Ask, since: datetime, pairs: Iterable[tuple[str, str]]
) -> list[tuple[str, str, date, int, int]]:
    """Every movement since `since` of these pairs: (warehouse, sku, business day, Δ available, Δ on hand) —
    a receipt adds to both, a lock takes from available, a release gives back, a dispatch takes from on hand (its
    locked units were already not available)."""
    wanted = set(pairs)
    zone = literal(ask.zone.key)
    out: list[tuple[str, str, date, int, int]] = []
    # Summed per pair and business day by the database: a month of a million orders' reservations is a few
    # thousand rows here, not a hundred thousand.
    receipt = (col(StockReceipt.warehouse), col(StockReceipt.sku), col(StockReceipt.qty))
    held = (col(Reservation.warehouse), col(Reservation.sku), col(Reservation.qty))
    for (warehouse_of, sku_of, qty_of), at, sign_available, sign_on_hand, where in (
        (receipt, col(StockReceipt.at), 1, 1, ()),
        (held, col(Reservation.created_at), -1, 0, ()),
        (held, col(Reservation.updated_at), 1, 0, (col(Reservation.state) == ReservationState.RELEASED,)),
        (held, col(Reservation.updated_at), 0, -1, (col(Reservation.state) == ReservationState.CONSUMED,)),
    ):
        day = local_date(at, zone)
        query: Any = (
            sa_select(warehouse_of, sku_of, day, func.sum(qty_of))
            .where(at >= since, *where)
            .group_by(warehouse_of, sku_of, day)
        )
        for warehouse, sku, on, qty in session.execute(query).all():
            out.append((warehouse, sku, on, sign_available * int(qty), sign_on_hand * int(qty)))
    return [m for m in out if (m[0], m[1]) in wanted]


def _locked_now(session: Session) -> dict[tuple[str, str], int]:
    pair = (col(Reservation.warehouse), col(Reservation.sku))
    query = sa_select(*pair, func.sum(col(Reservation.qty))).where(col(Reservation.state) == ReservationState.LOCKED)
    return {(warehouse, sku): int(qty) for warehouse, sku, qty in session.execute(query.group_by(*pair)).all()}


def _stock_day_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """One row per (warehouse, SKU, day) of the period from the pair's first receipt: its closing available and on
    hand, walked back from today's levels through every movement since the period began."""
    period = ask.filters.period
    pairs = _stock_pairs(session, ask)
    if not pairs:
        return []
    today = ask.day(ask.now)
    start, _ = ask.window()
    last = min(period.last, today)
    if last < period.first:
        return []
    span = Period(period.first, today)
    locked = _locked_now(session)
    available_deltas: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    on_hand_deltas: dict[tuple[str, str], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for warehouse, sku, day, d_available, d_on_hand in _movements(session, ask, start, pairs):
        available_deltas[(warehouse, sku)][day] += d_available
        on_hand_deltas[(warehouse, sku)][day] += d_on_hand
    lines = _product_lines(session) if by == "product_line" else {}
    rows: list[Row] = []
    for (warehouse, sku), pair in sorted(pairs.items()):
        available = closing_levels(
            span.first, span.days, pair.on_hand - locked.get((warehouse, sku), 0), available_deltas[(warehouse, sku)]
        )
        on_hand = closing_levels(span.first, span.days, pair.on_hand, on_hand_deltas[(warehouse, sku)])
        for n, day in enumerate(span.each_day()):
            if day > last or day < pair.first_day:
                continue
            group = _stock_group(by, day, warehouse, sku, lines)
            rows.append(
                Row(
                    f"{warehouse}/{sku}",
                    group,
                    day,
                    {"available": available[n], "on_hand": on_hand[n], "unit_cost": pair.unit_cost},
                )
            )
    return rows


def _stock_group(by: str | None, day: date, warehouse: str, sku: str, lines: dict[str, str]) -> str:
    if by is None:
        return ""
    if by in TIME_GRAINS:
        grain: Grain = by  # type: ignore[assignment]
        return bucket(day, grain).isoformat()
    if by == "warehouse":
        return warehouse
    if by == "sku":
        return sku
    return lines.get(sku, "general")


def _product_lines(session: Session) -> dict[str, str]:
    return dict(session.exec(select(Product.sku, Product.product_line)).all())


def _shipped_cost(session: Session, ask: Ask, by: str | None) -> dict[str, Decimal]:
    """Cost of goods shipped in the period per group: consumed reservations × the SKU's unit cost."""
    f = ask.filters
    start, end = ask.window()
    day = local_date(col(Reservation.updated_at), literal(ask.zone.key))
    grouped = (col(Reservation.warehouse), col(Reservation.sku), day, col(Product.unit_cost), col(Product.product_line))
    query: Any = (
        sa_select(*grouped, func.sum(col(Reservation.qty)))
        .join(Product, col(Product.sku) == col(Reservation.sku))
        .where(
            col(Reservation.state) == ReservationState.CONSUMED,
            col(Reservation.updated_at) >= start,
            col(Reservation.updated_at) < end,
            col(Product.unit_cost).is_not(None),
        )
    )
    if f.warehouse is not None:
        query = query.where(col(Reservation.warehouse) == f.warehouse)
    if f.product_line is not None:
        query = query.where(col(Product.product_line) == f.product_line)
    if ask.scope.warehouses is not None:
        query = query.where(col(Reservation.warehouse).in_(sorted(ask.scope.warehouses)))
    if ask.scope.sales_rep is not None:
        return {}
    out: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for warehouse, sku, on, cost, line, qty in session.execute(query.group_by(*grouped)).all():
        out[_stock_group(by, on, warehouse, sku, {sku: line})] += cost * int(qty)
    return out


def _stock_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    days = len(rows)
    return {"stock_out_rate": rate(sum(1 for r in rows if r.values["available"] <= 0), days)}


def _turnover(rows: list[Row], cogs: Decimal) -> float | None:
    valued = [r for r in rows if r.values["unit_cost"] is not None]
    days = {r.at for r in valued}
    if not days:
        return None
    average = sum((r.values["unit_cost"] * r.values["on_hand"] for r in valued), ZERO) / len(days)
    return ratio(cogs, average)


def _stock_age_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """Every lot with units on hand now, by the age of its receipt (buckets of domain/kpis.py AGE_BUCKETS)."""
    f = ask.filters
    if ask.scope.sales_rep is not None:
        return []
    query: Any = (
        sa_select(
            col(StockLot.warehouse),
            col(StockLot.sku),
            col(StockLot.lot),
            col(StockLot.received_at),
            col(StockLot.on_hand),
            col(Product.unit_cost),
            col(Product.product_line),
        )
        .join(Product, col(Product.sku) == col(StockLot.sku))
        .where(col(StockLot.on_hand) > 0)
    )
    if f.warehouse is not None:
        query = query.where(col(StockLot.warehouse) == f.warehouse)
    if f.product_line is not None:
        query = query.where(col(Product.product_line) == f.product_line)
    if ask.scope.warehouses is not None:
        query = query.where(col(StockLot.warehouse).in_(sorted(ask.scope.warehouses)))
    today = ask.day(ask.now)
    rows: list[Row] = []
    for warehouse, sku, lot, received, on_hand, cost, line in session.execute(query).all():
        age = age_bucket(ask.day(received), today)
        group = {None: "", "age": age, "warehouse": warehouse, "product_line": line, "sku": sku}.get(by, age)
        rows.append(Row(f"{warehouse}/{sku}/{lot}", group, received, {"units": on_hand, "unit_cost": cost, "age": age}))
    return rows


def _stock_age_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    old = [r for r in rows if r.values["age"] not in ("0-30", "31-60", "61-90")]
    units = sum(r.values["units"] for r in rows)
    return {
        "stock_units": units,
        "stock_value": sum((r.values["unit_cost"] * r.values["units"] for r in rows if r.values["unit_cost"]), ZERO),
        "aged_stock_share": rate(sum(r.values["units"] for r in old), units),
    }


def _reorder_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    """(SKU, warehouse) pairs whose available stock now (services/queries/availability.py) is below the SKU's
    reorder level (domain/replenishment.py, the rule purchasing's requisitions follow)."""
    pairs = _stock_pairs(session, ask)
    available = {(sku, warehouse): units for (warehouse, sku), units in available_by_pair(session, ask.now).items()
                 if (warehouse, sku) in pairs}  # fmt: skip
    levels = {sku: pair.reorder_level for (_, sku), pair in pairs.items()}
    lines = _product_lines(session) if by == "product_line" else {}
    rows: list[Row] = []
    for need in reorder_needs(dict(available), levels):
        group = _stock_group(by, ask.day(ask.now), need.warehouse, need.sku, lines) if by else ""
        rows.append(Row(f"{need.warehouse}/{need.sku}", group, ask.now, {"short": need.qty}))
    return rows


def _reorder_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return {"skus_below_reorder": len(rows)}


# carriers -----------------------------------------------------------------------------------------------------


def _seen(status: TrackingStatus) -> ColumnElement[bool]:
    """The parcel's carrier reported this status at some point."""
    return (
        select(literal(1))
        .select_from(TrackingEvent)
        .where(
            col(TrackingEvent.carrier) == col(Shipment.carrier),
            col(TrackingEvent.tracking_no) == col(Shipment.tracking_no),
            col(TrackingEvent.status) == status.value,
        )
        .correlate(Shipment)
        .exists()
    )


# The carriers' rules, as SQL (as the orders' rules above).
DELIVERED = col(Shipment.status) == TrackingStatus.DELIVERED.value  # signed for
PROMISED = and_(DELIVERED, col(Shipment.promised_by).is_not(None))  # signed for, with a carrier promise kept
DELIVERED_ON_TIME = and_(PROMISED, col(Shipment.ended_at) <= col(Shipment.promised_by))
FIRST_ATTEMPT = and_(DELIVERED, ~_seen(TrackingStatus.ATTEMPT_FAILED))  # signed for without a failed attempt
HAD_EXCEPTION = or_(
    _seen(TrackingStatus.ATTEMPT_FAILED), _seen(TrackingStatus.EXCEPTION),
    col(Shipment.status) == TrackingStatus.EXCEPTION.value,
)  # fmt: skip
PARCEL_MEASURES = {
    "delivered": _flag(DELIVERED),
    "promised": _flag(PROMISED),
    "on_time": _flag(DELIVERED_ON_TIME),
    "first_attempt": _flag(FIRST_ATTEMPT),
    "transit_seconds": case((DELIVERED, seconds_between(col(Shipment.dispatched_at), col(Shipment.ended_at))), else_=0),
}


def _parcel_conditions(ask: Ask) -> list[ColumnElement[bool]]:
    """The filters and scope over parcels: a warehouse or carrier is the parcel's own; the rest its order's."""
    f = ask.filters
    where = _order_conditions(replace(ask, filters=replace(f, warehouse=None, carrier=None)))
    if f.warehouse is not None:
        where.append(col(Shipment.warehouse) == f.warehouse)
    if f.carrier is not None:
        where.append(col(Shipment.carrier) == f.carrier)
    if ask.scope.warehouses is not None:
        where.append(col(Shipment.warehouse).in_(sorted(ask.scope.warehouses)))
    return where


_PARCELS = join(Shipment, OrderFacts, col(OrderFacts.order_no) == col(Shipment.order_no))


def _parcel_rows(
    session: Session, ask: Ask, by: str | None, anchor: Any, measures: dict[str, Any], *where: ColumnElement[bool]
) -> list[Row]:
    """Parcels whose `anchor` falls in the period, of orders passing the filters and scope, with the measures."""
    query: Any = (
        sa_select(
            col(Shipment.order_no),
            col(Shipment.carrier),
            col(Shipment.warehouse),
            col(Shipment.status),
            col(Shipment.dispatched_at),
            col(Shipment.ended_at),
            col(Shipment.promised_by),
            anchor,
            col(OrderFacts.channel),
            col(OrderFacts.region),
            col(OrderFacts.sales_rep),
            *measures.values(),
        )
        .select_from(_PARCELS)
        .where(*_in_window(ask, anchor, *_parcel_conditions(ask), *where))
    )
    fetched = session.execute(query).all()
    links = _groups(session, "product_line", sorted({r[0] for r in fetched})) if by == "product_line" else {}
    rows: list[Row] = []
    for order_no, carrier, warehouse, status, sent, ended, promised, at, ch, region, rep, *values in fetched:
        row_values = {"status": status, "dispatched_at": sent, "ended_at": ended, "promised_by": promised,
                      **dict(zip(measures, values, strict=True))}  # fmt: skip
        columns = {"channel": ch, "region": region, "sales_rep": rep, "carrier": carrier, "warehouse": warehouse}
        rows.extend(Row(order_no, key, at, row_values) for key in _group_keys(ask, by, at, columns, links, order_no))
    return rows


def _ended_parcel_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _parcel_rows(session, ask, by, col(Shipment.ended_at), PARCEL_MEASURES)


def _ended_parcel_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return _ended_parcel_from(len(rows), {k: sum(r.values[k] for r in rows) for k in PARCEL_MEASURES})


def _ended_parcel_from(parcels: int, sums: dict[str, Any]) -> dict[str, Value]:
    delivered = int(sums["delivered"])
    return {
        "transit_time_avg": float(sums["transit_seconds"]) / 3600 / delivered if delivered else None,
        "on_time_delivery_rate": rate(int(sums["on_time"]), int(sums["promised"])),
        "first_attempt_rate": rate(int(sums["first_attempt"]), delivered),
        "sign_for_rate": rate(delivered, parcels),
    }


def _sent_parcel_rows(session: Session, ask: Ask, by: str | None) -> list[Row]:
    return _parcel_rows(session, ask, by, col(Shipment.dispatched_at), {"exception": _flag(HAD_EXCEPTION)})


def _exception(row: Row) -> bool:
    return bool(row.values["exception"])


def _sent_parcel_figures(rows: list[Row], ask: Ask) -> dict[str, Value]:
    return {"exception_rate": rate(sum(1 for r in rows if _exception(r)), len(rows))}


# --- totals in the database -------------------------------------------------------------------------------------
# A card needs its family's figures in total, a chart per group of one dimension: the database counts, sums and
# ranks the same rows by the same rules (the SQL above) and sends back a row per group — what keeps a cockpit fast
# on a million orders. A dimension it does not group by here (an order's carriers or product lines, weeks of a
# percentile, a stop's reasons) and every drill-down use the rows. tests/integration/test_kpi_catalogue.py checks
# both against one hand-computed world, and that they agree.

NONE_GROUP = "(none)"  # as the rows group what has no value


def _in_window(ask: Ask, anchor: Any, *where: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    start, end = ask.window()
    return [anchor >= start, anchor < end, *where]


def _key(value: Any) -> str:
    if value is None or value == "":
        return NONE_GROUP
    return value.isoformat() if isinstance(value, date) else str(value)


def _sums(
    session: Session,
    source: Any,
    where: Sequence[ColumnElement[bool]],
    measures: dict[str, Any],
    group: Any = None,
    count: Any = None,
) -> dict[str, tuple[int, dict[str, Any]]]:
    """Per group (one group "" without `group`): how many rows (or distinct `count`), and each measure's sum."""
    counted = func.count(func.distinct(count)) if count is not None else func.count()
    columns = [counted, *(func.coalesce(func.sum(e), 0) for e in measures.values())]
    query: Any = sa_select(*columns, *([group] if group is not None else [])).select_from(source).where(*where)
    if group is not None:
        query = query.group_by(group)
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    for found in session.execute(query).all():
        key = _key(found[-1]) if group is not None else ""
        out[key] = (int(found[0]), dict(zip(measures, found[1 : 1 + len(measures)], strict=True)))
    return out


def _ranked(
    session: Session, value: Any, source: Any, where: Sequence[ColumnElement[bool]], group: Any = None
) -> dict[str, dict[str, Value]]:
    """Per group: p50 and p90 of `value` by nearest rank (domain/kpis.py percentile), ranked by the database."""
    partition = [group] if group is not None else []
    inner = (
        sa_select(
            value.label("v"),
            func.row_number().over(partition_by=partition or None, order_by=value).label("rn"),
            func.count().over(partition_by=partition or None).label("n"),
            (group if group is not None else literal("")).label("g"),
        )
        .select_from(source)
        .where(*where)
        .subquery()
    )
    ranks = [(inner.c.n * hundredths + 99) // 100 for hundredths in (50, 90)]
    query = sa_select(inner.c.g, inner.c.rn, inner.c.n, inner.c.v).where(or_(*(inner.c.rn == r for r in ranks)))
    out: dict[str, dict[str, Value]] = {}
    for g, rn, n, v in session.execute(query).all():
        figures = out.setdefault(_key(g) if group is not None else "", {"p50": None, "p90": None})
        for name, p in (("p50", 0.5), ("p90", 0.9)):
            if rn == nearest_rank(n, p):
                figures[name] = float(v)
    return out


def _order_group(ask: Ask, by: str | None, anchor: Any, source: Any) -> tuple[Any, Any] | None:
    """The FROM and the group key for breaking orders' figures down `by` in the database; None: not here."""
    if by is None:
        return source, None
    if by in ("channel", "region", "sales_rep"):
        return source, getattr(OrderFacts, by)
    if by in TIME_GRAINS:
        return source, local_date(anchor, literal(ask.zone.key))
    if by == "warehouse":  # an order counts in each warehouse it has a (live) pick list in; none: "(none)"
        listed = and_(col(PickList.order_no) == col(OrderFacts.order_no), col(PickList.state) != "voided")
        return join(source, PickList, listed, isouter=True), col(PickList.warehouse)
    return None


def _fold(per_day: dict[str, tuple[int, dict[str, Any]]], by: str | None) -> dict[str, tuple[int, dict[str, Any]]]:
    """Sums per business day into weeks or months (an order counts on one day, so the counts add up too)."""
    if by not in ("week", "month"):
        return per_day
    out: dict[str, tuple[int, dict[str, Any]]] = {}
    grain: Grain = by  # type: ignore[assignment]
    for day, (n, sums) in per_day.items():
        key = bucket(date.fromisoformat(day), grain).isoformat() if day != NONE_GROUP else day
        before_n, before = out.get(key, (0, dict.fromkeys(sums, 0)))
        out[key] = (before_n + n, {k: before[k] + v for k, v in sums.items()})
    return out


def _facts_ranked(session: Session, ask: Ask, by: str | None, anchor: Any, value: Any, prefix: str) -> Figures | None:
    if by in ("week", "month") or (grouped := _order_group(ask, by, anchor, OrderFacts)) is None:
        return None
    source, group = grouped
    where = _in_window(ask, anchor, value.is_not(None), *_order_conditions(ask))
    ranked = _ranked(session, value, source, where, group)
    return {g: {f"{prefix}_p50": r["p50"], f"{prefix}_p90": r["p90"]} for g, r in ranked.items()}


def _cycle_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _facts_ranked(session, ask, by, col(OrderFacts.completed_at), col(OrderFacts.cycle_seconds), "cycle_time")


def _approval_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    anchor, value = col(OrderFacts.approval_ended_at), col(OrderFacts.approval_wait_seconds)
    return _facts_ranked(session, ask, by, anchor, value, "approval_wait")


def _stage_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    anchor = col(OrderStageTime.left_at)
    conditions = _order_conditions(ask)
    source: Any = OrderStageTime
    if conditions or by in ("channel", "region", "sales_rep", "warehouse"):  # these need the order's facts
        source = join(OrderStageTime, OrderFacts, col(OrderFacts.order_no) == col(OrderStageTime.order_no))
    if by in (None, "stage"):
        group = col(OrderStageTime.stage) if by else None
    elif by in ("week", "month") or (grouped := _order_group(ask, by, anchor, source)) is None:
        return None
    else:
        source, group = grouped
    ranked = _ranked(session, col(OrderStageTime.seconds), source, _in_window(ask, anchor, *conditions), group)
    return {g: {"stage_dwell_p50": r["p50"], "stage_dwell_p90": r["p90"]} for g, r in ranked.items()}


def _facts_summed(
    session: Session, ask: Ask, by: str | None, anchor: Any, where: Sequence[ColumnElement[bool]],
    measures: dict[str, Any], finish: Callable[[int, dict[str, Any]], dict[str, Value]],
) -> Figures | None:  # fmt: skip
    if (grouped := _order_group(ask, by, anchor, OrderFacts)) is None:
        return None
    source, group = grouped
    conditions = _in_window(ask, anchor, *where, *_order_conditions(ask))
    count = col(OrderFacts.order_no) if by == "warehouse" else None
    summed = _fold(_sums(session, source, conditions, measures, group, count), by)
    return {g: finish(n, sums) for g, (n, sums) in summed.items()}


def _dispatch_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _facts_summed(session, ask, by, col(OrderFacts.dispatched_at), DISPATCH_COUNTED,
                         {"on_time": _flag(ON_TIME_DISPATCH)},
                         lambda n, sums: {"on_time_dispatch_rate": rate(int(sums["on_time"]), n)})  # fmt: skip


def _delivery_end_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _facts_summed(session, ask, by, col(OrderFacts.ended_at), DELIVERY_ENDED,
                         {"otif": _flag(OTIF), "perfect": _flag(PERFECT)},
                         lambda n, sums: {"otif_rate": rate(int(sums["otif"]), n),
                                          "perfect_order_rate": rate(int(sums["perfect"]), n)})  # fmt: skip


def _fill_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _facts_summed(session, ask, by, col(OrderFacts.received_at), FILL_COUNTED, FILL_MEASURES,
                         lambda n, sums: _fill_from(n, {k: int(v) for k, v in sums.items()}))  # fmt: skip


def _stop_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    if by == "reason":  # only the stopped orders, under each of their reasons: the rows (a few)
        return None
    measures = {
        s.value: _flag(col(OrderFacts.status) == s.value) for s in (OrderStatus.CANCELLED, OrderStatus.REJECTED)
    }

    def finish(n: int, sums: dict[str, Any]) -> dict[str, Value]:
        return {"cancellation_rate": rate(int(sums[OrderStatus.CANCELLED.value]), n),
                "rejection_rate": rate(int(sums[OrderStatus.REJECTED.value]), n)}  # fmt: skip

    return _facts_summed(session, ask, by, col(OrderFacts.received_at), (), measures, finish)


def _sales_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    anchor = col(OrderFacts.received_at)
    billed = _billed(ask.filters.currency)
    finish: Callable[[int, dict[str, Any]], dict[str, Value]] = lambda n, sums: _sales_from(n, sums["amount"])  # noqa: E731
    if ask.filters.product_line is None and by != "product_line":
        return _facts_summed(session, ask, by, anchor, billed, {"amount": col(OrderFacts.total)}, finish)
    # By or for a product line an order counts with its lines of that line only.
    lines = join(
        join(OrderFacts, OrderLineRow, col(OrderLineRow.order_no) == col(OrderFacts.order_no)),
        Product, col(Product.sku) == col(OrderLineRow.sku),
    )  # fmt: skip
    where = _in_window(ask, anchor, *billed, *_order_conditions(ask, lines_filtered=True))
    if ask.filters.product_line is not None:
        where.append(col(Product.product_line) == ask.filters.product_line)
    group = col(Product.product_line) if by == "product_line" else None
    if by not in (None, "product_line"):
        if by in ("warehouse",) or (grouped := _order_group(ask, by, anchor, lines)) is None:
            return None
        lines, group = grouped
    summed = _sums(session, lines, where, {"amount": col(OrderLineRow.amount)}, group, col(OrderFacts.order_no))
    return {g: finish(n, sums) for g, (n, sums) in _fold(summed, by).items()}


def _parcel_totals(
    session: Session, ask: Ask, by: str | None, anchor: Any, measures: dict[str, Any],
    finish: Callable[[int, dict[str, Any]], dict[str, Value]],
) -> Figures | None:  # fmt: skip
    group: Any = None
    if by in ("carrier", "warehouse"):
        group = getattr(Shipment, by)
    elif by in ("channel", "region", "sales_rep"):
        group = getattr(OrderFacts, by)
    elif by in TIME_GRAINS:
        group = local_date(anchor, literal(ask.zone.key))
    elif by is not None:
        return None
    summed = _fold(_sums(session, _PARCELS, _in_window(ask, anchor, *_parcel_conditions(ask)), measures, group), by)
    return {g: finish(n, sums) for g, (n, sums) in summed.items()}


def _ended_parcel_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _parcel_totals(session, ask, by, col(Shipment.ended_at), PARCEL_MEASURES, _ended_parcel_from)


def _sent_parcel_totals(session: Session, ask: Ask, by: str | None) -> Figures | None:
    return _parcel_totals(session, ask, by, col(Shipment.dispatched_at), {"exception": _flag(HAD_EXCEPTION)},
                          lambda n, sums: {"exception_rate": rate(int(sums["exception"]), n)})  # fmt: skip


PARCEL_DIMENSIONS = ("day", "week", "month", "carrier", "region", "warehouse", "channel", "product_line", "sales_rep")
STOCK_DIMENSIONS = ("day", "week", "month", "warehouse", "product_line", "sku")
STOCK_FILTERS = ("warehouse", "product_line")


def _worst(key: str) -> Callable[[Row], Any]:
    return lambda row: -float(row.values[key])


def _always(row: Row) -> bool:
    return True


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("cycle", ORDER_DIMENSIONS, _cycle_rows, _cycle_figures,
               {k: (_always, _worst("seconds")) for k in ("cycle_time_p50", "cycle_time_p90")},
               totals=_cycle_totals),
        Family("stages", ("stage", *ORDER_DIMENSIONS), _stage_rows, _stage_figures,
               {k: (_always, _worst("seconds")) for k in ("stage_dwell_p50", "stage_dwell_p90")},
               totals=_stage_totals),
        Family("approval", ORDER_DIMENSIONS, _approval_rows, _approval_figures,
               {k: (_always, _worst("seconds")) for k in ("approval_wait_p50", "approval_wait_p90")},
               totals=_approval_totals),
        Family("stuck", ("stage", *ORDER_DIMENSIONS[3:]), _stuck_rows, _stuck_figures,
               {"stuck_orders": (_always, _worst("over"))}),
        Family("dispatch", ORDER_DIMENSIONS, _dispatch_rows, _dispatch_figures,
               {"on_time_dispatch_rate": (lambda r: not _on_time(r), lambda r: r.values["dispatch_by"])},
               totals=_dispatch_totals),
        Family("delivery_end", ORDER_DIMENSIONS, _delivery_end_rows, _delivery_end_figures,
               {"otif_rate": (lambda r: not _otif(r), lambda r: r.at),
                "perfect_order_rate": (lambda r: not _perfect(r), lambda r: r.at)},
               totals=_delivery_end_totals),
        Family("fill", ORDER_DIMENSIONS, _fill_rows, _fill_figures,
               {"order_fill_rate": (lambda r: r.values["units_short"] > 0, _worst("units_short")),
                "line_fill_rate": (lambda r: r.values["lines_short"] > 0, _worst("lines_short")),
                "unit_fill_rate": (lambda r: r.values["units_short"] > 0, _worst("units_short")),
                "backorder_rate": (lambda r: bool(r.values["backordered"]), lambda r: r.at)},
               totals=_fill_totals),
        Family("stops", ("reason", *ORDER_DIMENSIONS), _stop_rows, _stop_figures,
               {"cancellation_rate": (lambda r: r.values["status"] == OrderStatus.CANCELLED, lambda r: r.at),
                "rejection_rate": (lambda r: r.values["status"] == OrderStatus.REJECTED, lambda r: r.at)},
               totals=_stop_totals),
        Family("sales", ORDER_DIMENSIONS, _sales_rows, _sales_figures,
               {k: (_always, _worst("amount")) for k in ("sales_amount", "order_count", "average_order_value")},
               totals=_sales_totals),
        Family("stock_days", STOCK_DIMENSIONS, _stock_day_rows, _stock_figures,
               {"stock_out_rate": (lambda r: r.values["available"] <= 0, lambda r: r.at)}, STOCK_FILTERS),
        Family("stock_age", ("age", "warehouse", "product_line", "sku"), _stock_age_rows, _stock_age_figures,
               {}, STOCK_FILTERS),
        Family("reorder", ("warehouse", "product_line", "sku"), _reorder_rows, _reorder_figures, {}, STOCK_FILTERS),
        Family("parcels_ended", PARCEL_DIMENSIONS, _ended_parcel_rows, _ended_parcel_figures,
               {"transit_time_avg": (lambda r: bool(r.values["delivered"]),
                                     lambda r: r.values["dispatched_at"] - r.values["ended_at"]),
                "on_time_delivery_rate": (lambda r: bool(r.values["promised"] and not r.values["on_time"]),
                                          lambda r: r.values["promised_by"] - r.values["ended_at"]),
                "first_attempt_rate": (lambda r: bool(r.values["delivered"] and not r.values["first_attempt"]),
                                       lambda r: r.at),
                "sign_for_rate": (lambda r: not r.values["delivered"], lambda r: r.at)},
               totals=_ended_parcel_totals),
        Family("parcels_sent", PARCEL_DIMENSIONS, _sent_parcel_rows, _sent_parcel_figures,
               {"exception_rate": (_exception, lambda r: r.at)}, totals=_sent_parcel_totals),
    )
}  # fmt: skip


def _k(id: str, group: str, title: str, unit: Unit, better: Literal["up", "down"], family: str, text: str) -> Kpi:
    return Kpi(id, group, title, unit, better, " ".join(text.split()), family)


CATALOGUE: dict[str, Kpi] = {
    k.id: k
    for k in (
        # flow
        _k("cycle_time_p50", "flow", "Order cycle time p50", "seconds", "down", "cycle", """Median time from intake
           (the order reaching us) to COMPLETED, over the orders completed in the period (nearest rank)."""),
        _k("cycle_time_p90", "flow", "Order cycle time p90", "seconds", "down", "cycle", """90th percentile of the
           same: 9 in 10 orders completed in the period took at most this long."""),
        _k("stage_dwell_p50", "flow", "Dwell per stage p50", "seconds", "down", "stages", """Median time an order
           spent in a status (all its visits to it), over the stage visits that ended in the period; broken down by
           stage it is each stage's median. A terminal status has no dwell."""),
        _k("stage_dwell_p90", "flow", "Dwell per stage p90", "seconds", "down", "stages", """90th percentile of
           the same; by stage, the stage whose p90 is highest is where orders wait longest."""),
        _k("approval_wait_p50", "flow", "Approval wait p50", "seconds", "down", "approval", """Median time an
           order spent waiting for decisions (CREDIT_HOLD and AWAITING_APPROVAL, all levels together), over the
           orders whose last wait ended in the period (approved, rejected or cancelled while waiting)."""),
        _k("approval_wait_p90", "flow", "Approval wait p90", "seconds", "down", "approval", """90th percentile of
           the same: 9 in 10 of those orders waited at most this long for their decisions."""),
        _k("stuck_orders", "flow", "Orders stuck past their stage SLA", "count", "down", "stuck", """Open orders
           that have been in their current status longer than the stage's SLA (domain/stage_sla.py) right now; the
           period does not apply. Waits on people (approval, payment) have their own deadlines and are not
           counted."""),
        _k("on_time_dispatch_rate", "flow", "On-time dispatch rate", "ratio", "up", "dispatch", """Of the orders
           dispatched in the period (their last parcel left), the share that left by the promised date (intake +
           ORDERFLOW_DISPATCH_PROMISE, fixed at intake). Orders registered before promises were kept are not
           counted."""),
        _k("otif_rate", "flow", "OTIF rate", "ratio", "up", "delivery_end", """On time in full: of the orders
           whose delivery ended in the period (COMPLETED, or FAILED after a dispatch), the share dispatched by the
           promised date with every ordered unit shipped."""),
        _k("perfect_order_rate", "flow", "Perfect order rate", "ratio", "up", "delivery_end", """Of the same
           orders, the share that were on time, in full, not returned (no parcel refused, returned or lost) and
           COMPLETED."""),
        _k("order_fill_rate", "flow", "Order fill rate", "ratio", "up", "fill", """Of the orders received in the
           period whose allocation was tried, the share the first attempt could fill completely from available
           stock."""),
        _k("line_fill_rate", "flow", "Line fill rate", "ratio", "up", "fill", """Of the lines of those orders, the
           share the first allocation attempt could fill completely."""),
        _k("unit_fill_rate", "flow", "Unit fill rate", "ratio", "up", "fill", """Of the units of those orders, the
           share the first allocation attempt found available."""),
        _k("backorder_rate", "flow", "Backorder rate", "ratio", "down", "fill", """Of the orders received in the
           period whose allocation was tried, the share that were BACKORDERED at some point."""),
        _k("cancellation_rate", "flow", "Cancellation rate", "ratio", "down", "stops", """Of the orders received in
           the period, the share CANCELLED (by a person, a deadline or the backorder limit). By reason: the share
           of the period's orders stopped for that reason (an order with two reasons counts under both)."""),
        _k("rejection_rate", "flow", "Rejection rate", "ratio", "down", "stops", """Of the orders received in the
           period, the share REJECTED (validation, or an approver's no)."""),
        # sales
        _k("sales_amount", "sales", "Sales", "money", "up", "sales", """What the orders received in the period
           will bill: their totals (tax included, as ordered), not counting orders rejected, cancelled or failed,
           in the currency asked for (CNY unless asked). Filtered or broken down by product line, only the lines of
           that line count."""),
        _k("order_count", "sales", "Orders", "count", "up", "sales", """How many orders the sales figure counts
           (with a product line: the orders with a line of it)."""),
        _k("average_order_value", "sales", "Average order value", "money", "up", "sales", """Sales divided by
           orders (half up to the cent)."""),
        # stock
        _k("stock_out_rate", "stock", "Stock-out rate", "ratio", "down", "stock_days", """Share of SKU-days
           (each stocked SKU in each warehouse, each day of the period up to today, from the day its first lot was
           received) that closed with nothing available (on hand − locked ≤ 0). The history is walked back from
           today's levels through the receipts, locks, releases and dispatches since; a lot past its expiry counts
           until it is shipped or written off."""),
        _k("inventory_turnover", "stock", "Inventory turnover", "times", "up", "stock_days", """Cost of goods
           shipped in the period (units dispatched × the SKU's unit cost) divided by the average stock value (the
           mean over the period's days of each day's closing on-hand × unit cost). For the period, not annualised
           (× 365 / days for a yearly rate). SKUs without a unit cost are left out of both."""),
        _k("stock_units", "stock", "Units in stock", "count", "up", "stock_age", """Units on hand now (the
           period does not apply), by age of their lot's receipt: 0-30, 31-60, 61-90, 91-180, 181+ days."""),
        _k("stock_value", "stock", "Stock value", "money", "down", "stock_age", """On-hand units now × unit cost
           (SKUs without a cost are left out)."""),
        _k("aged_stock_share", "stock", "Stock older than 90 days", "ratio", "down", "stock_age", """Share of the
           units on hand now whose lot was received more than 90 days ago."""),
        _k("skus_below_reorder", "stock", "SKUs below reorder point", "count", "down", "reorder", """(SKU,
           warehouse) pairs whose available stock now (on hand − locked, nothing of an expired lot) is below the
           SKU's reorder level: what purchasing's requisitions top up (domain/replenishment.py)."""),
        # carriers
        _k("transit_time_avg", "carriers", "Average transit time", "hours", "down", "parcels_ended", """Mean hours
           from dispatch to the signature, over the parcels signed for in the period."""),
        _k("on_time_delivery_rate", "carriers", "On-time delivery rate", "ratio", "up", "parcels_ended", """Of the
           parcels signed for in the period, the share signed for by the carrier's promise (dispatch +
           ORDERFLOW_CARRIER_PROMISE_DAYS for that carrier, fixed at dispatch)."""),
        _k("first_attempt_rate", "carriers", "First-attempt delivery rate", "ratio", "up", "parcels_ended", """Of
           the parcels signed for in the period, the share the carrier never reported a failed delivery attempt
           for."""),
        _k("sign_for_rate", "carriers", "Sign-for rate", "ratio", "up", "parcels_ended", """Of the parcels whose
           journey ended in the period (signed for, refused, returned or lost), the share signed for."""),
        _k("exception_rate", "carriers", "Exception rate", "ratio", "down", "parcels_sent", """Of the parcels
           dispatched in the period, the share with a carrier exception or a failed attempt reported."""),
    )
}  # fmt: skip


# --- answers ---------------------------------------------------------------------------------------------------


def figures(session: Session, ask: Ask, family: str, by: str | None = None) -> Figures:
    """One family's KPIs, in total (group "") or per group of `by`. The same question on the same data is answered
    from memory (services/queries/kpi_memory.py)."""
    fam = FAMILIES[family]
    if by is not None and by not in fam.dimensions:
        raise ValueError(f"{family} KPIs cannot be broken down by {by} (they can by {', '.join(fam.dimensions)})")
    if family in NOW_FAMILIES:  # as of now: they change with the clock, not only with the data
        return _computed(session, ask, family, by)
    _, end = ask.window()
    settled = end if end <= ask.now else None  # ended before now: new rows rarely touch it (kpi_memory)
    question = (family, by, ask.filters, ask.scope, ask.zone.key)
    # Today's date too for an open period: it counts its days up to today (the stock-outs, say).
    known = kpi_memory.remembered(
        session, question, ask.day(ask.now), settled, lambda: _computed(session, ask, family, by)
    )
    return {group: dict(values) for group, values in known.items()}


def forget_figures() -> None:
    """Drop the remembered figures (the bench measures what computing them costs)."""
    kpi_memory.forget()


def _computed(session: Session, ask: Ask, family: str, by: str | None) -> Figures:
    fam = FAMILIES[family]
    if fam.totals is not None and (summed := fam.totals(session, ask, by)) is not None:
        if by is None:
            return {"": summed.get("") or fam.figures([], ask)}
        return {group: summed[group] for group in sorted(summed, key=_natural_order(by))}
    return figures_from_rows(session, ask, family, by)


def figures_from_rows(session: Session, ask: Ask, family: str, by: str | None = None) -> Figures:
    """`figures` from the family's rows (what its drill-down lists), whatever the database could sum."""
    fam = FAMILIES[family]
    rows = fam.rows(session, ask, by)
    groups = _by_group(rows) if by is not None else {"": rows}
    out = {group: fam.figures(groups[group], ask) for group in sorted(groups, key=_natural_order(by))}
    if family == "stock_days":
        cogs = _shipped_cost(session, ask, by)
        for group, group_rows in groups.items():
            out[group]["inventory_turnover"] = _turnover(group_rows, cogs.get(group, ZERO))
    if by is None and not out[""]:
        out[""] = fam.figures([], ask)
    return out


_AGE_ORDER = {name: n for n, (name, _, _) in enumerate(AGE_BUCKETS)}


def _natural_order(by: str | None) -> Callable[[str], tuple[int, str]]:
    """Groups as a chart lists them: stock ages youngest first, every other dimension by its name (days, weeks
    and months as ISO dates, so in time order)."""
    if by == "age":
        return lambda group: (_AGE_ORDER.get(group, len(_AGE_ORDER)), group)
    return lambda group: (0, group)


def family_total(session: Session, ask: Ask, family: str) -> dict[str, Value]:
    """A family's figures in total (its cards)."""
    result = figures(session, ask, family)
    if family == "stock_days" and not result.get(""):
        return {"stock_out_rate": None, "inventory_turnover": None}
    return result.get("", {})


NOW_FAMILIES = frozenset({"stuck", "stock_age", "reorder"})  # as of now: no previous period to compare with

# The families of a cockpit's cards are independent aggregates: computed side by side on their own connections,
# the database works on both cores while Python assembles another family's figures. Few threads for the whole
# process, so a crowd of viewers holds at most this many more connections.
_FIGURING = ThreadPoolExecutor(max_workers=3, thread_name_prefix="kpi-figures")


def _side_by_side(session: Session, calls: Sequence[Callable[[Session], T]]) -> list[T]:
    """Each call with a session of its own on the same database, at most three at once; answers in call order."""
    bind = session.get_bind()
    if len(calls) < 2 or not isinstance(bind, Engine):
        return [call(session) for call in calls]

    def run(call: Callable[[Session], T]) -> T:
        with read_only(bind) as own:  # on SQLite no queue for the write lock: WAL readers see the last commit
            return call(own)

    return list(_FIGURING.map(run, calls))


def report(session: Session, ask: Ask, kpis: Sequence[str] | None = None) -> dict[str, Any]:
    """Every KPI asked for (all by default) with its value, the previous period's and the trend."""
    wanted = [CATALOGUE[k] for k in (kpis or list(CATALOGUE))]
    now: dict[str, dict[str, Value]] = {}
    before: dict[str, dict[str, Value]] = {}
    previous = ask.previous()
    asked = [(family, period) for family in dict.fromkeys(k.family for k in wanted)
             for period in ((ask,) if family in NOW_FAMILIES else (ask, previous))]  # fmt: skip
    answers = _side_by_side(session, [partial(family_total, ask=a, family=family) for family, a in asked])
    for (family, a), answer in zip(asked, answers, strict=True):
        (now if a is ask else before)[family] = answer
    cards = {}
    for kpi in wanted:
        value = now[kpi.family].get(kpi.id)
        prior = before.get(kpi.family, {}).get(kpi.id)
        cards[kpi.id] = {
            "title": kpi.title,
            "group": kpi.group,
            "unit": kpi.unit,
            "better": kpi.better,
            "value": _plain(value),
            "previous": _plain(prior),
            "trend": trend(value, prior, TREND_TOLERANCE[kpi.unit]) if kpi.family not in NOW_FAMILIES else "none",
            "definition": kpi.definition,
        }
    return {
        "period": _period(ask.filters.period),
        "previous_period": _period(previous.filters.period),
        "filters": ask.filters.given(),
        "currency": ask.filters.currency,
        "scope": ask.scope.describe(),
        "kpis": cards,
    }


def breakdown(session: Session, ask: Ask, kpi_id: str, by: str) -> dict[str, Any]:
    """One KPI per group of a dimension (the data of a chart), groups in their natural order."""
    kpi = CATALOGUE[kpi_id]
    per_group = figures(session, ask, kpi.family, by)
    rows: list[dict[str, Any]] = [{"key": group, "value": values.get(kpi_id)} for group, values in per_group.items()]
    if kpi_id == "sales_amount" and by == "product_line":  # the share by product line
        total = sum((r["value"] or ZERO for r in rows), ZERO)
        for r in rows:
            r["share"] = ratio(r["value"], total)
    for r in rows:
        r["value"] = _plain(r["value"])
    return {
        "kpi": kpi_id,
        "title": kpi.title,
        "unit": kpi.unit,
        "by": by,
        "period": _period(ask.filters.period),
        "filters": ask.filters.given(),
        "scope": ask.scope.describe(),
        "rows": rows,
    }


def drill(session: Session, ask: Ask, kpi_id: str, by: str | None = None, group: str | None = None) -> list[str]:
    """The orders behind a figure (a card, or a bar or slice `group` of a breakdown `by`), those that make it worse
    first: for a rate the orders that failed it, for a time the slowest."""
    kpi = CATALOGUE[kpi_id]
    fam = FAMILIES[kpi.family]
    if kpi_id not in fam.drill:
        raise ValueError(f"{kpi_id} counts stock, not orders: it has no order list")
    include, order = fam.drill[kpi_id]
    rows = [r for r in fam.rows(session, ask, by) if (group is None or r.group == group) and include(r)]
    rows.sort(key=order)
    return list(dict.fromkeys(r.order_no for r in rows))


def dimensions_of(kpi_id: str) -> tuple[str, ...]:
    return FAMILIES[CATALOGUE[kpi_id].family].dimensions


def filters_of(kpi_id: str) -> tuple[str, ...]:
    return FAMILIES[CATALOGUE[kpi_id].family].filters


def _plain(value: Value) -> float | int | str | None:
    """A figure as JSON carries it: money as a decimal string (exact, as the API's amounts are), the rest numbers."""
    return str(value) if isinstance(value, Decimal) else value


def _period(p: Period) -> dict[str, str]:
    return {"first": p.first.isoformat(), "last": p.last.isoformat()}


# --- the order's own stage times (the order page, the demo) -----------------------------------------------------


def stage_durations(session: Session, order_no: str) -> dict[str, float]:
    """Seconds an order spent in each status so far (domain/kpis.py stage_times; the current one not counted)."""
    events = session.exec(
        select(OrderEvent.status, OrderEvent.at).where(OrderEvent.order_no == order_no).order_by(col(OrderEvent.seq))
    ).all()
    return {stage: t.seconds for stage, t in stage_times(list(events)).items()}
