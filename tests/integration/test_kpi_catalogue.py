"""Every KPI of the catalogue (services/queries/kpis.py CATALOGUE) against a world of 32 orders with fixed clocks,
each figure worked out by hand (the arithmetic is in the comments). The read model is derived by the real code:
the orders, events, lines, pick lists, parcels and consumed reservations are inserted, then
services/order_facts.py `refresh` derives each order's facts and stage times.

The business's time zone is Asia/Shanghai (UTC+8, no DST): every time below is Shanghai time unless it says UTC.
Now is 2027-03-10 10:00; the period P is 2027-02-24 (Wed) .. 2027-03-09 (Tue), 14 days; its previous period is
2027-02-10 .. 2027-02-23. Both databases (the `engine` fixture)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from domain.kpis import Period
from models.status import OrderStatus, TrackingStatus
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
)
from services import order_facts
from services.queries import kpi_memory, kpis
from services.queries.kpis import (
    CATALOGUE,
    EVERYTHING,
    FAMILIES,
    Ask,
    KpiFilters,
    KpiScope,
    breakdown,
    drill,
    figures,
    figures_from_rows,
    forget_figures,
    report,
    scope_of,
)
from services.users import set_warehouses

SH = ZoneInfo("Asia/Shanghai")
UTC_ZONE = ZoneInfo("UTC")
P = Period(date(2027, 2, 24), date(2027, 3, 9))
H = 3600.0  # seconds in an hour

# Product lines (dev/seed.py PRODUCT_LINES)
PERIPHERALS = "外设 peripherals"  # SKU-1001..1007
FURNITURE = "办公家具 furniture"  # SKU-1008..1009
OFFICE = "办公设备 office equipment"  # SKU-1010..1012
NETWORK = "网络与存储 network & storage"  # SKU-1013..1017
COMPUTERS = "电脑与影音 computers & AV"  # SKU-1018..1020
SUPPLIES = "办公用品 supplies"  # SKU-1021..1024

K100, T17 = "kuaidi100", "17track"  # the two carriers


def sh(month: int, day: int, hour: int, minute: int = 0, year: int = 2027) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, month, day, hour, minute, tzinfo=UTC)


NOW = sh(3, 10, 10)


# --- the world ---------------------------------------------------------------------------------------------------


@dataclass
class Parcel:
    carrier: str
    warehouse: str
    dispatched: datetime
    status: str
    ended: datetime | None = None
    promised: datetime | None = None  # dispatch + the carrier's promise (kuaidi100 2 days, 17track 1 day)
    news: list[tuple[str, datetime]] = field(default_factory=list)  # carrier events worth counting


@dataclass
class Spec:
    no: str
    received: datetime
    channel: str
    region: str
    rep: str
    lines: list[tuple[str, int, str]]  # sku, qty, unit price (as ordered)
    path: list[tuple[str, int]]  # (status, minutes after the previous event), after RECEIVED
    currency: str = "CNY"
    promise: bool = True  # dispatch_by = received + 48 h (ORDERFLOW_DISPATCH_PROMISE)
    short: dict[str, int] | None = None  # what the first allocation could not find; None: not tried
    shipped: list[tuple[int, int, str, datetime]] = field(default_factory=list)  # line, qty, warehouse, at
    picks: list[tuple[str, str]] = field(default_factory=list)  # warehouse, pick list state
    parcels: list[Parcel] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def events(self) -> list[tuple[str, datetime]]:
        out, at = [(OrderStatus.RECEIVED.value, self.received)], self.received
        for status, minutes in self.path:
            at += timedelta(minutes=minutes)
            out.append((status, at))
        return out


M, HR = 1, 60  # minutes

A, B = "alice", "bob"
EAST, NORTH, SOUTH = "华东", "华北", "华南"


def delivered(pick: int, transit: int, *, waits: Sequence[tuple[str, int]] = ()) -> list[tuple[str, int]]:
    """The happy path: RECEIVED 10 min (then the approval waits, in hours), APPROVED 20 min, ALLOCATED 30 min,
    PICKING `pick` h, DISPATCHED 2 h, IN_TRANSIT `transit` h, DELIVERED 12 h, COMPLETED. Cycle: 15 h + waits +
    pick + transit; dispatched at received + 1 h + waits + pick."""
    steps: list[tuple[str, int]] = []
    previous = 10 * M
    for status, hours in waits:
        steps.append((status, previous))
        previous = hours * HR
    return [
        *steps,
        ("APPROVED", previous),
        ("ALLOCATED", 20 * M),
        ("PICKING", 30 * M),
        ("DISPATCHED", pick * HR),
        ("IN_TRANSIT", 2 * HR),
        ("DELIVERED", transit * HR),
        ("COMPLETED", 12 * HR),
    ]


def _orders() -> list[Spec]:
    return [
        # --- completed in P (cycle h = 15 + waits + pick + transit) -----------------------------------------------
        # C01: cycle 15+6+20 = 41 h; dispatched 02-24 16:00 (promise 02-26 09:00); parcel 16:00 → 02-25 14:00 = 22 h
        Spec("C01", sh(2, 24, 9), "web", EAST, A, [("SKU-1001", 2, "100.00")], delivered(6, 20), short={},
             shipped=[(1, 2, "WH-SH", sh(2, 24, 16))], picks=[("WH-SH", "shipped")],
             parcels=[Parcel(K100, "WH-SH", sh(2, 24, 16), "DELIVERED", sh(2, 25, 14), sh(2, 26, 16))]),
        # C02: cycle 15+4+30 = 49 h; dispatched 02-25 15:00; parcel 15:00 → 02-26 23:00 = 32 h (promise 02-26 15:00:
        # late)
        Spec("C02", sh(2, 25, 10), "b2b", NORTH, B, [("SKU-1002", 1, "300.00"), ("SKU-1008", 1, "1000.00")],
             delivered(4, 30), short={}, shipped=[(1, 1, "WH-BJ", sh(2, 25, 15)), (2, 1, "WH-BJ", sh(2, 25, 15))],
             picks=[("WH-BJ", "shipped")],
             parcels=[Parcel(T17, "WH-BJ", sh(2, 25, 15), "DELIVERED", sh(2, 26, 23), sh(2, 26, 15))]),
        # C03: cycle 15+50+24 = 89 h; dispatched 02-28 11:00, promised 02-28 08:00: LATE; parcel 02-28 11:00 →
        # 03-01 13:00 = 26 h, a failed attempt on the way
        Spec("C03", sh(2, 26, 8), "web", SOUTH, A, [("SKU-1013", 3, "150.00")], delivered(50, 24), short={},
             shipped=[(1, 3, "WH-GZ", sh(2, 28, 11))], picks=[("WH-GZ", "shipped")],
             parcels=[Parcel(K100, "WH-GZ", sh(2, 28, 11), "DELIVERED", sh(3, 1, 13), sh(3, 2, 11),
                             [("ATTEMPT_FAILED", sh(3, 1, 9))])]),
        # C04: AWAITING_APPROVAL 2 h; cycle 15+2+8+40 = 65 h; dispatched 02-27 20:00; parcel 20:00 → 03-01 14:00 =
        # 42 h, a parcel of before the carrier promises were kept (promised_by None)
        Spec("C04", sh(2, 27, 9), "tmall", EAST, B, [("SKU-1018", 1, "5000.00")],
             delivered(8, 40, waits=[("AWAITING_APPROVAL", 2)]), short={},
             shipped=[(1, 1, "WH-SH", sh(2, 27, 20))], picks=[("WH-SH", "shipped")],
             parcels=[Parcel(K100, "WH-SH", sh(2, 27, 20), "DELIVERED", sh(3, 1, 14), None)]),
        # C05: cycle 15+3+18 = 36 h; dispatched 03-01 13:00 but only 1 of its 2 units shipped: NOT IN FULL;
        # parcel 13:00 → 03-02 09:00 = 20 h
        Spec("C05", sh(3, 1, 9), "web", EAST, A, [("SKU-1001", 2, "100.00")], delivered(3, 18), short={},
             shipped=[(1, 1, "WH-SH", sh(3, 1, 13))], picks=[("WH-SH", "shipped")],
             parcels=[Parcel(T17, "WH-SH", sh(3, 1, 13), "DELIVERED", sh(3, 2, 9), sh(3, 2, 13))]),
        # C06: CREDIT_HOLD 5 h + AWAITING_APPROVAL 3 h = 8 h; cycle 15+8+10+22 = 55 h; dispatched 03-02 09:00;
        # parcel 09:00 → 03-03 09:00 = 24 h, exactly its promise (on time)
        Spec("C06", sh(3, 1, 14), "b2b", NORTH, A, [("SKU-1013", 2, "150.00"), ("SKU-1021", 4, "50.00")],
             delivered(10, 22, waits=[("CREDIT_HOLD", 5), ("AWAITING_APPROVAL", 3)]), short={},
             shipped=[(1, 2, "WH-BJ", sh(3, 2, 9)), (2, 4, "WH-BJ", sh(3, 2, 9))], picks=[("WH-BJ", "shipped")],
             parcels=[Parcel(T17, "WH-BJ", sh(3, 2, 9), "DELIVERED", sh(3, 3, 9), sh(3, 3, 9))]),
        # C07: cycle 15+60+12 = 87 h; dispatched 03-04 21:00, promised 03-04 08:00: LATE; parcel → 03-05 11:00 = 14 h
        Spec("C07", sh(3, 2, 8), "web", SOUTH, B, [("SKU-1008", 1, "1000.00")], delivered(60, 12), short={},
             shipped=[(1, 1, "WH-GZ", sh(3, 4, 21))], picks=[("WH-GZ", "shipped")],
             parcels=[Parcel(K100, "WH-GZ", sh(3, 4, 21), "DELIVERED", sh(3, 5, 11), sh(3, 6, 21))]),
        # C08: AWAITING_APPROVAL level 1 (1 h) then level 2 (3 h, the same status again): one 4 h wait; cycle
        # 15+4+5+26 = 50 h; dispatched 03-03 19:00; parcel → 03-04 23:00 = 28 h
        Spec("C08", sh(3, 3, 9), "tmall", EAST, A, [("SKU-1010", 1, "3000.00")],
             delivered(5, 26, waits=[("AWAITING_APPROVAL", 1), ("AWAITING_APPROVAL", 3)]), short={},
             shipped=[(1, 1, "WH-SH", sh(3, 3, 19))], picks=[("WH-SH", "shipped")],
             parcels=[Parcel(K100, "WH-SH", sh(3, 3, 19), "DELIVERED", sh(3, 4, 23), sh(3, 5, 19))]),
        # C09: two warehouses. PICKING 13:00, WH-SH's parcel leaves 20:00 (a PICKING event again: the order waits
        # for WH-BJ), WH-BJ's 03-04 01:00 (DISPATCHED); PICKING 12 h; cycle 15+12+24 = 51 h. Parcels: kuaidi100
        # 03-03 20:00 → 03-05 02:00 = 30 h; 17track 03-04 01:00 → 03-05 03:00 = 26 h (promised 03-05 01:00: late)
        Spec("C09", sh(3, 3, 12), "b2b", NORTH, B, [("SKU-1002", 1, "300.00"), ("SKU-1015", 5, "20.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("PICKING", 7 * HR),
              ("DISPATCHED", 5 * HR), ("IN_TRANSIT", 2 * HR), ("DELIVERED", 24 * HR), ("COMPLETED", 12 * HR)],
             short={}, shipped=[(1, 1, "WH-SH", sh(3, 3, 20)), (2, 5, "WH-BJ", sh(3, 4, 1))],
             picks=[("WH-SH", "shipped"), ("WH-BJ", "shipped")],
             parcels=[Parcel(K100, "WH-SH", sh(3, 3, 20), "DELIVERED", sh(3, 5, 2), sh(3, 5, 20)),
                      Parcel(T17, "WH-BJ", sh(3, 4, 1), "DELIVERED", sh(3, 5, 3), sh(3, 5, 1))]),
        # C10: the first allocation found 2 of the 5 SKU-1001 (short 3): BACKORDERED 20 h; cycle 10m+20m+20h+30m
        # +7h+2h+16h+12h = 58 h; dispatched 03-05 13:00; parcel → 03-06 07:00 = 18 h, a failed attempt
        Spec("C10", sh(3, 4, 9), "web", EAST, A, [("SKU-1001", 5, "100.00"), ("SKU-1021", 2, "50.00")],
             [("APPROVED", 10 * M), ("BACKORDERED", 20 * M), ("ALLOCATED", 20 * HR), ("PICKING", 30 * M),
              ("DISPATCHED", 7 * HR), ("IN_TRANSIT", 2 * HR), ("DELIVERED", 16 * HR), ("COMPLETED", 12 * HR)],
             short={"SKU-1001": 3}, shipped=[(1, 5, "WH-SH", sh(3, 5, 13)), (2, 2, "WH-SH", sh(3, 5, 13))],
             picks=[("WH-SH", "shipped")],
             parcels=[Parcel(T17, "WH-SH", sh(3, 5, 13), "DELIVERED", sh(3, 6, 7), sh(3, 6, 13),
                             [("ATTEMPT_FAILED", sh(3, 6, 1))])]),
        # --- failed after dispatch -----------------------------------------------------------------------------
        # F01: PICKING 2 h, dispatched 02-28 12:00 (on time), IN_TRANSIT 30 h, refused: FAILED 03-01 20:00
        Spec("F01", sh(2, 28, 9), "web", SOUTH, B, [("SKU-1001", 1, "100.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("DISPATCHED", 2 * HR),
              ("IN_TRANSIT", 2 * HR), ("FAILED", 30 * HR)], short={},
             shipped=[(1, 1, "WH-GZ", sh(2, 28, 12))], picks=[("WH-GZ", "shipped")],
             parcels=[Parcel(K100, "WH-GZ", sh(2, 28, 12), "REFUSED", sh(3, 1, 20), sh(3, 2, 12),
                             [("ATTEMPT_FAILED", sh(3, 1, 18))])],
             reasons=["parcel not delivered: REFUSED"]),
        # F02: PICKING 55 h, dispatched 03-04 18:00 (promised 03-04 10:00: late), IN_TRANSIT 24 h,
        # DELIVERY_EXCEPTION 48 h, lost (EXPIRED): FAILED 03-07 20:00
        Spec("F02", sh(3, 2, 10), "b2b", NORTH, A, [("SKU-1013", 1, "150.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("DISPATCHED", 55 * HR),
              ("IN_TRANSIT", 2 * HR), ("DELIVERY_EXCEPTION", 24 * HR), ("FAILED", 48 * HR)], short={},
             shipped=[(1, 1, "WH-BJ", sh(3, 4, 18))], picks=[("WH-BJ", "shipped")],
             parcels=[Parcel(T17, "WH-BJ", sh(3, 4, 18), "EXPIRED", sh(3, 7, 20), sh(3, 5, 18),
                             [("EXCEPTION", sh(3, 5, 20))])],
             reasons=["parcel not delivered: EXPIRED"]),
        # --- open orders ----------------------------------------------------------------------------------------
        # W01: RECEIVED since 03-09 09:00 (25 h at now; SLA 30 min: stuck, 24.5 h over). 100.10: see the AOV.
        Spec("W01", sh(3, 9, 9), "web", EAST, A, [("SKU-1001", 1, "100.10")], []),
        # W02: first allocation short 4 of 10: BACKORDERED 03-09 23:30 → ALLOCATED 03-10 07:00 (3 h at now; SLA
        # 1 h: stuck, 2 h over)
        Spec("W02", sh(3, 9, 23), "tmall", SOUTH, B, [("SKU-1021", 10, "50.00")],
             [("APPROVED", 10 * M), ("BACKORDERED", 20 * M), ("ALLOCATED", 450 * M)], short={"SKU-1021": 4},
             picks=[("WH-GZ", "issued")]),
        # W03: PICKING since 03-09 02:00 (32 h; SLA 24 h: stuck, 8 h over); first listed in WH-SH (voided)
        Spec("W03", sh(3, 9, 1), "web", SOUTH, B, [("SKU-1002", 1, "300.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M)], short={},
             picks=[("WH-SH", "voided"), ("WH-GZ", "issued")]),
        # W04: PICKING since 03-09 22:00 (12 h: within its SLA)
        Spec("W04", sh(3, 9, 21), "b2b", EAST, A, [("SKU-1001", 1, "100.00"), ("SKU-1013", 2, "150.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M)], short={},
             picks=[("WH-SH", "issued")]),
        # W05: registered without a dispatch promise; PICKING 24 h, DISPATCHED 03-07 10:00, 24 h, IN_TRANSIT since
        # 03-08 10:00 (48 h: within 5 days); the carrier reported an exception
        Spec("W05", sh(3, 6, 9), "web", NORTH, B, [("SKU-1015", 10, "20.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("DISPATCHED", 24 * HR),
              ("IN_TRANSIT", 24 * HR)], promise=False, short={},
             shipped=[(1, 10, "WH-BJ", sh(3, 7, 10))], picks=[("WH-BJ", "shipped")],
             parcels=[Parcel(T17, "WH-BJ", sh(3, 7, 10), "IN_TRANSIT", None, sh(3, 8, 10),
                             [("EXCEPTION", sh(3, 8, 12))])]),
        # W06: waiting for an approver since 03-08 09:10 (no stage SLA)
        Spec("W06", sh(3, 8, 9), "tmall", EAST, A, [("SKU-1018", 1, "5000.00")], [("AWAITING_APPROVAL", 10 * M)]),
        # W07: nothing of its 10 units was there: BACKORDERED since 03-07 09:30 (no stage SLA)
        Spec("W07", sh(3, 7, 9), "web", EAST, A, [("SKU-1021", 10, "50.00")],
             [("APPROVED", 10 * M), ("BACKORDERED", 20 * M)], short={"SKU-1021": 10}),
        # W08: two warehouses; PICKING since 03-09 03:00, WH-SH's parcel left 15:00 (a PICKING event again), WH-GZ
        # has not shipped: 31 h in PICKING at now, stuck (7 h over). Its first parcel left on time.
        Spec("W08", sh(3, 9, 2), "b2b", SOUTH, B, [("SKU-1001", 1, "100.00"), ("SKU-1002", 1, "300.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("PICKING", 12 * HR)], short={},
             shipped=[(1, 1, "WH-SH", sh(3, 9, 15))], picks=[("WH-SH", "shipped"), ("WH-GZ", "issued")],
             parcels=[Parcel(K100, "WH-SH", sh(3, 9, 15), "IN_TRANSIT", None, sh(3, 11, 15))]),
        # U01: in US dollars; PICKING since 03-09 19:00 (15 h)
        Spec("U01", sh(3, 9, 18), "web", EAST, A, [("SKU-1001", 1, "100.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M)], currency="USD", short={},
             picks=[("WH-SH", "issued")]),
        # B01: 2027-02-23 17:00 UTC = 02-24 01:00 Shanghai: in P (in UTC it would be the previous period)
        Spec("B01", utc(2, 23, 17), "web", EAST, B, [("SKU-1021", 2, "50.00")], [("AWAITING_PAYMENT", 10 * M)]),
        # B02: 2027-03-01 23:30 UTC = 03-02 07:30 Shanghai
        Spec("B02", utc(3, 1, 23, 30), "tmall", NORTH, A, [("SKU-1015", 5, "20.00")], [("AWAITING_PAYMENT", 10 * M)]),
        # B03: 2027-03-09 16:30 UTC = 03-10 00:30 Shanghai: today, after P
        Spec("B03", utc(3, 9, 16, 30), "web", EAST, A, [("SKU-1001", 1, "100.00")], [("AWAITING_APPROVAL", 10 * M)]),
        # --- stopped -----------------------------------------------------------------------------------------
        Spec("J01", sh(2, 25, 15), "web", EAST, B, [("SKU-1001", 1, "100.00")], [("REJECTED", 5 * M)],
             reasons=["ship-to address incomplete: missing phone"]),
        # J02: AWAITING_APPROVAL 6 h, then an approver's no
        Spec("J02", sh(3, 3, 15), "b2b", NORTH, A, [("SKU-1018", 1, "5000.00")],
             [("AWAITING_APPROVAL", 10 * M), ("REJECTED", 6 * HR)],
             reasons=["rejected by derek (finance_director): too risky"]),
        # X01: APPROVED 30 min, then cancelled by its sales rep
        Spec("X01", sh(3, 4, 10), "web", SOUTH, A, [("SKU-1002", 1, "300.00")],
             [("APPROVED", 10 * M), ("CANCELLED", 30 * M)], reasons=["cancelled by alice: customer changed mind"]),
        # X02: CREDIT_HOLD 24 h, no decision before the deadline (two reasons)
        Spec("X02", sh(3, 5, 9), "b2b", NORTH, B, [("SKU-1008", 2, "1000.00")],
             [("CREDIT_HOLD", 10 * M), ("CANCELLED", 24 * HR)],
             reasons=["credit hold: over the credit limit", "no finance decision before the approval deadline"]),
        # X03: nothing of its 20 units: BACKORDERED 7 days (168 h), the backorder deadline passed
        Spec("X03", sh(2, 26, 9), "web", EAST, B, [("SKU-1021", 20, "50.00")],
             [("APPROVED", 10 * M), ("BACKORDERED", 20 * M), ("CANCELLED", 168 * HR)], short={"SKU-1021": 20},
             reasons=["backorder deadline passed (SKU-1021: 20)"]),
        # --- the previous period ------------------------------------------------------------------------------
        Spec("P01", sh(2, 15, 9), "web", EAST, A, [("SKU-1001", 3, "100.00")], delivered(4, 20), short={},
             shipped=[(1, 3, "WH-SH", sh(2, 15, 14))], picks=[("WH-SH", "shipped")]),
        Spec("P02", sh(2, 16, 10), "b2b", NORTH, B, [("SKU-1002", 2, "300.00")],
             delivered(4, 24, waits=[("AWAITING_APPROVAL", 3)]), short={},
             shipped=[(1, 2, "WH-BJ", sh(2, 16, 18))], picks=[("WH-BJ", "shipped")]),
        # P03: PICKING 96 h, dispatched 02-24 10:00 (in P; promised 02-22 09:00: late), DISPATCHED 24 h, IN_TRANSIT
        # since 02-25 10:00: 13 days at now, stuck (8 days over)
        Spec("P03", sh(2, 20, 9), "web", SOUTH, A, [("SKU-1013", 2, "150.00")],
             [("APPROVED", 10 * M), ("ALLOCATED", 20 * M), ("PICKING", 30 * M), ("DISPATCHED", 96 * HR),
              ("IN_TRANSIT", 24 * HR)], short={}, shipped=[(1, 2, "WH-GZ", sh(2, 24, 10))],
             picks=[("WH-GZ", "shipped")],
             parcels=[Parcel(K100, "WH-GZ", sh(2, 24, 10), "IN_TRANSIT", None, sh(2, 26, 10))]),
    ]  # fmt: skip


def build(session: Session) -> None:
    """Insert the 32 orders with everything the read model is derived from, then derive it (`refresh`)."""
    lots: dict[tuple[str, str], int] = {}
    for lot in session.exec(select(StockLot).order_by(col(StockLot.id))).all():
        lots.setdefault((lot.warehouse, lot.sku), lot.id or 0)
    specs = _orders()
    for spec in specs:
        events = spec.events()
        total = sum((Decimal(price) * qty for _, qty, price in spec.lines), Decimal("0.00"))
        session.add(
            SalesOrder(
                order_no=spec.no, workflow_id=f"order-{spec.no}", customer_id="C-1001", channel=spec.channel,
                sales_rep=spec.rep, order_type="standard", payment_method="credit", currency=spec.currency,
                total=total, status=events[-1][0], payload={"order_no": spec.no, "ship_to": {"region": spec.region}},
                content_hash=spec.no, reasons=spec.reasons, created_at=spec.received, updated_at=events[-1][1],
                dispatch_by=spec.received + timedelta(hours=48) if spec.promise else None,
            )
        )  # fmt: skip
        for seq, (status, at) in enumerate(events, start=1):
            session.add(OrderEvent(order_no=spec.no, seq=seq, status=status, at=at))
        for line_no, (sku, qty, price) in enumerate(spec.lines, start=1):
            amount = Decimal(price) * qty
            session.add(
                OrderLineRow(
                    order_no=spec.no, line_no=line_no, sku=sku, qty=qty, unit_price=Decimal(price), amount=amount
                )
            )
        for warehouse, state in spec.picks:
            session.add(
                PickList(order_no=spec.no, warehouse=warehouse, lines=[], state=state, created_at=spec.received)
            )
        for line_no, qty, warehouse, at in spec.shipped:
            sku = spec.lines[line_no - 1][0]
            session.add(
                Reservation(
                    key=f"{spec.no}:{line_no}:{warehouse}", order_no=spec.no, line_no=line_no, sku=sku,
                    warehouse=warehouse, lot_id=lots[(warehouse, sku)], qty=qty, state=ReservationState.CONSUMED,
                    created_at=spec.received, updated_at=at,
                )
            )  # fmt: skip
        for n, parcel in enumerate(spec.parcels, start=1):
            tracking_no = f"{spec.no}-{n}"
            signed = parcel.ended if parcel.status == TrackingStatus.DELIVERED else None
            session.add(
                Shipment(
                    order_no=spec.no, warehouse=parcel.warehouse, carrier=parcel.carrier, tracking_no=tracking_no,
                    status=parcel.status, signed_at=signed, dispatched_at=parcel.dispatched,
                    promised_by=parcel.promised, ended_at=parcel.ended,
                )
            )  # fmt: skip
            seen = [("PICKED_UP", parcel.dispatched), *parcel.news]
            if parcel.ended is not None:
                seen.append((parcel.status, parcel.ended))
            for status, at in seen:
                session.add(TrackingEvent(carrier=parcel.carrier, tracking_no=tracking_no, status=status, at=at))
        session.flush()
        if spec.short is not None:
            order_facts.record_first_allocation(session, spec.no, spec.short)
    for spec in specs:
        order_facts.refresh(session, spec.no, SH)
    session.commit()


@pytest.fixture
def world(engine: Engine) -> Engine:
    with Session(engine) as session:
        build(session)
    return engine


def ask(
    period: Period = P,
    *,
    zone: ZoneInfo = SH,
    scope: KpiScope = EVERYTHING,
    now: datetime = NOW,
    **filters: Any,
) -> Ask:
    return Ask(KpiFilters(period=period, **filters), scope, zone, now)


def value(session: Session, a: Ask, kpi: str) -> Any:
    return report(session, a, [kpi])["kpis"][kpi]["value"]


def by(session: Session, a: Ask, kpi: str, dimension: str) -> dict[str, Any]:
    return {row["key"]: row["value"] for row in breakdown(session, a, kpi, dimension)["rows"]}


def test_every_kpi_of_the_catalogue_is_checked_here() -> None:
    checked = {
        "cycle_time_p50", "cycle_time_p90", "stage_dwell_p50", "stage_dwell_p90", "approval_wait_p50",
        "approval_wait_p90", "stuck_orders", "on_time_dispatch_rate", "otif_rate", "perfect_order_rate",
        "order_fill_rate", "line_fill_rate", "unit_fill_rate", "backorder_rate", "cancellation_rate",
        "rejection_rate", "sales_amount", "order_count", "average_order_value", "stock_out_rate",
        "inventory_turnover", "stock_units", "stock_value", "aged_stock_share", "skus_below_reorder",
        "transit_time_avg", "on_time_delivery_rate", "first_attempt_rate", "sign_for_rate", "exception_rate",
    }  # fmt: skip
    assert set(CATALOGUE) == checked


# --- flow: times --------------------------------------------------------------------------------------------------


def test_cycle_stage_and_approval_times(world: Engine) -> None:
    with Session(world) as session:
        # Completed in P, hours: C01 41, C02 49, C03 89, C04 65, C05 36, C06 55, C07 87, C08 50, C09 51, C10 58
        # (P01, P02 completed in the previous period). Sorted: 36 41 49 50 51 55 58 65 87 89; n = 10:
        # p50 = rank ceil(0.5·10) = 5 → 51 h; p90 = rank ceil(0.9·10) = 9 → 87 h.
        assert value(session, ask(), "cycle_time_p50") == 51 * H
        assert value(session, ask(), "cycle_time_p90") == 87 * H
        # The slowest first: 89 C03, 87 C07, 65 C04, 58 C10, 55 C06, 51 C09, 50 C08, 49 C02, 41 C01, 36 C05.
        assert drill(session, ask(), "cycle_time_p90") == [
            "C03", "C07", "C04", "C10", "C06", "C09", "C08", "C02", "C01", "C05",
        ]  # fmt: skip

        # Stage visits that ended in P (02-24 00:00 .. 03-10 00:00 Shanghai), seconds:
        #   RECEIVED  27: J01 300; 600 for C01-C10, F01, F02, W02-W08, J02, X01-X03, U01, B01, B02 (26)
        #                 (W01 is still there; B03 left it 03-10 00:40, after P; P01-P03 left in February)
        #   APPROVED  21: 1200 ×20 (C01-C10, F01, F02, W02-W05, W07, W08, X03, U01), X01 1800
        #   ALLOCATED 17: 1800 (C01-C10, F01, F02, W03, W04, W05, W08, U01)
        #   PICKING   14: hours C01 6, C02 4, C03 50, C04 8, C05 3, C06 10, C07 60, C08 5, C09 12, C10 7, F01 2,
        #                 F02 55, P03 96 (left 02-24 10:00), W05 24
        #   DISPATCHED 14: 7200 ×12 (C01-C10, F01, F02), 86400 ×2 (P03, W05)
        #   IN_TRANSIT 12: hours 20 30 24 40 18 22 12 26 24 16 (C01-C10), 30 (F01), 24 (F02)
        #   DELIVERED 10: 43200;  DELIVERY_EXCEPTION 1: F02 172800
        #   AWAITING_APPROVAL 4: C04 7200, C06 10800, C08 14400, J02 21600
        #   CREDIT_HOLD 2: C06 18000, X02 86400;  BACKORDERED 2: C10 72000, X03 604800 (W02 left it 03-10 07:00)
        # 124 visits. p50 = rank 62: 300 (1), 600 (→27), 1200 (→47), 1800 (→65) → 1800.
        # p90 = rank ceil(111.6) = 112, i.e. the 13th largest: 604800, 345600, 216000, 198000, 180000, 172800,
        # 144000, 108000, 108000, 93600, then 86400 ×7 (ranks 11-17 from the top) → 86400.
        assert value(session, ask(), "stage_dwell_p50") == 1800.0
        assert value(session, ask(), "stage_dwell_p90") == 86400.0
        # By stage. PICKING sorted (h): 2 3 4 5 6 7 8 10 12 24 50 55 60 96; n = 14: p50 rank 7 → 8 h, p90 rank
        # ceil(12.6) = 13 → 60 h. IN_TRANSIT (h): 12 16 18 20 22 24 24 24 26 30 30 40: p50 rank 6 → 24 h, p90 rank
        # ceil(10.8) = 11 → 30 h. DISPATCHED: p50 rank 7 → 7200, p90 rank 13 → 86400. AWAITING_APPROVAL: p50 rank 2
        # → 10800, p90 rank 4 → 21600. BACKORDERED: rank 1 → 72000, rank 2 → 604800 (where orders wait longest).
        # APPROVED: p90 rank 19 of 21 → 1200.
        assert by(session, ask(), "stage_dwell_p90", "stage") == {
            "ALLOCATED": 1800.0,
            "APPROVED": 1200.0,
            "AWAITING_APPROVAL": 21600.0,
            "BACKORDERED": 604800.0,
            "CREDIT_HOLD": 86400.0,
            "DELIVERED": 43200.0,
            "DELIVERY_EXCEPTION": 172800.0,
            "DISPATCHED": 86400.0,
            "IN_TRANSIT": 30 * H,
            "PICKING": 60 * H,
            "RECEIVED": 600.0,
        }
        assert by(session, ask(), "stage_dwell_p50", "stage") == {
            "ALLOCATED": 1800.0,
            "APPROVED": 1200.0,
            "AWAITING_APPROVAL": 10800.0,
            "BACKORDERED": 72000.0,
            "CREDIT_HOLD": 18000.0,
            "DELIVERED": 43200.0,
            "DELIVERY_EXCEPTION": 172800.0,
            "DISPATCHED": 7200.0,
            "IN_TRANSIT": 24 * H,
            "PICKING": 8 * H,
            "RECEIVED": 600.0,
        }
        # The orders that spent time in PICKING, longest first (hours above; no ties).
        assert drill(session, ask(), "stage_dwell_p90", "stage", "PICKING") == [
            "P03", "C07", "F02", "C03", "W05", "C09", "C06", "C04", "C10", "C01", "C08", "C02", "C05", "F01",
        ]  # fmt: skip

        # Approval waits whose last wait ended in P: C04 2 h, C06 5+3 = 8 h, C08 1+3 = 4 h, J02 6 h (rejected),
        # X02 24 h (cancelled at the deadline); W06 and B03 still wait, P02's ended in February.
        # Sorted 2 4 6 8 24; p50 rank 3 → 6 h; p90 rank ceil(4.5) = 5 → 24 h.
        assert value(session, ask(), "approval_wait_p50") == 6 * H
        assert value(session, ask(), "approval_wait_p90") == 24 * H
        assert drill(session, ask(), "approval_wait_p90") == ["X02", "C06", "J02", "C08", "C04"]


def test_stuck_orders_as_of_now(world: Engine) -> None:
    with Session(world) as session:
        # At 03-10 10:00: W01 RECEIVED 25 h (> 30 min), W02 ALLOCATED 3 h (> 1 h), W03 PICKING 32 h (> 24 h),
        # W08 PICKING 31 h since it entered it (its second PICKING event, 19 h ago, is the same visit), P03
        # IN_TRANSIT 13 days (> 5 days). Not: W04 PICKING 12 h, U01 PICKING 15 h, W05 IN_TRANSIT 48 h, W06/B03
        # AWAITING_APPROVAL, B01/B02 AWAITING_PAYMENT, W07 BACKORDERED (no SLA). → 5; the period does not apply.
        assert value(session, ask(), "stuck_orders") == 5
        assert value(session, ask(Period(date(2026, 1, 1), date(2026, 1, 1))), "stuck_orders") == 5
        # Most overdue first: P03 8 days, W01 24.5 h, W03 8 h, W08 7 h, W02 2 h.
        assert drill(session, ask(), "stuck_orders") == ["P03", "W01", "W03", "W08", "W02"]
        # An hour earlier (09:00) W02 was in ALLOCATED 2 h (still stuck) and W08 30 h; at 03-10 03:00 W08 had been
        # in PICKING 24 h exactly (not past it) and W02 was still BACKORDERED: P03, W01, W03 (25 h) → 3.
        assert value(session, ask(now=sh(3, 10, 3)), "stuck_orders") == 3


# --- flow: rates -------------------------------------------------------------------------------------------------


def test_dispatch_otif_and_perfect_orders(world: Engine) -> None:
    with Session(world) as session:
        # Dispatched (the last parcel left) in P, with a promise (received + 48 h): C01-C10, F01, F02, P03 = 13;
        # W05 kept no promise, W08 has one of its two parcels out. Late: C03 (11:00 > 08:00), C07 (03-04 21:00 >
        # 08:00), F02 (18:00 > 10:00), P03 (02-24 > 02-22). On time 9 / 13.
        assert value(session, ask(), "on_time_dispatch_rate") == pytest.approx(9 / 13, abs=1e-12)
        # Failing, earliest promise first: P03 02-22 09:00, C03 02-28 08:00, C07 03-04 08:00, F02 03-04 10:00.
        assert drill(session, ask(), "on_time_dispatch_rate") == ["P03", "C03", "C07", "F02"]

        # Delivery ended in P: C01-C10 (COMPLETED), F01, F02 (FAILED after dispatch) = 12. Not OTIF: C03, C07, F02
        # (late), C05 (1 of 2 units shipped) → 8 / 12. Perfect also needs COMPLETED and nothing returned: F01
        # (refused) falls out too → 7 / 12.
        assert value(session, ask(), "otif_rate") == pytest.approx(8 / 12, abs=1e-12)
        assert value(session, ask(), "perfect_order_rate") == pytest.approx(7 / 12, abs=1e-12)
        # By when they ended: C03 03-02 01:00, C05 03-02 21:00, C07 03-05 23:00, F02 03-07 20:00.
        assert drill(session, ask(), "otif_rate") == ["C03", "C05", "C07", "F02"]
        assert drill(session, ask(), "perfect_order_rate") == ["F01", "C03", "C05", "C07", "F02"]


def test_fill_backorder_cancellation_and_rejection(world: Engine) -> None:
    with Session(world) as session:
        # Received in P with a first allocation tried: C01-C10, F01, F02, W02, W03, W04, W05, W07, W08, X03, U01
        # = 20 orders, 26 lines, 90 units:
        #   lines 1+2+1+1+1+2+1+1+2+2 (C) +1+1 (F) +1+1+2+1+1+2 (W02-W08) +1 (X03) +1 (U01) = 26
        #   units 2+2+3+1+2+6+1+1+6+7 (C) +1+1 (F) +10+1+3+10+10+2 (W) +20 (X03) +1 (U01) = 90
        # Short at the first attempt: C10 (1 line, 3 units), W02 (1, 4), W07 (1, 10), X03 (1, 20).
        assert value(session, ask(), "order_fill_rate") == pytest.approx(16 / 20, abs=1e-12)
        assert value(session, ask(), "line_fill_rate") == pytest.approx(22 / 26, abs=1e-12)
        assert value(session, ask(), "unit_fill_rate") == pytest.approx((90 - 37) / 90, abs=1e-12)
        # Backordered at some point: the same four.
        assert value(session, ask(), "backorder_rate") == pytest.approx(4 / 20, abs=1e-12)
        assert drill(session, ask(), "unit_fill_rate") == ["X03", "W07", "W02", "C10"]  # most units short first

        # Received in P: 28 orders (C01-C10, F01, F02, W01-W08, U01, B01, B02, J01, J02, X01-X03). Cancelled X01,
        # X02, X03 → 3/28; rejected J01, J02 → 2/28.
        assert value(session, ask(), "cancellation_rate") == pytest.approx(3 / 28, abs=1e-12)
        assert value(session, ask(), "rejection_rate") == pytest.approx(2 / 28, abs=1e-12)
        assert drill(session, ask(), "cancellation_rate") == ["X03", "X01", "X02"]  # by when received
        # By reason: each stopped order under the kind of each of its reasons (domain/kpis.py STOP_REASONS; a reason
        # of no known kind under its own words before the particulars); a group's figure is its share of all 28
        # orders received in P (X02 counts under both of its reasons). Only stopped orders make groups.
        reasons = by(session, ask(), "cancellation_rate", "reason")
        assert reasons == pytest.approx(
            {
                "backorder deadline passed": 1 / 28,  # X03
                "cancelled by a person": 1 / 28,  # X01
                "credit hold": 1 / 28,  # X02 "credit hold: over the credit limit"
                "no decision before the deadline": 1 / 28,  # X02
                "rejected by an approver": 0.0,  # J02: rejected, not cancelled
                "ship-to address incomplete": 0.0,  # J01
            },
            abs=1e-12,
        )
        rejected = by(session, ask(), "rejection_rate", "reason")
        assert rejected["rejected by an approver"] == pytest.approx(1 / 28, abs=1e-12)
        assert rejected["ship-to address incomplete"] == pytest.approx(1 / 28, abs=1e-12)
        assert rejected["credit hold"] == 0.0
        assert drill(session, ask(), "cancellation_rate", "reason", "credit hold") == ["X02"]


# --- sales -------------------------------------------------------------------------------------------------------

# Money is answered as decimal strings (exact, as JSON carries it).
# Sales in P (received in P, CNY, not rejected, cancelled or failed): 20 orders
#   C01 200, C02 1300, C03 450, C04 5000, C05 200, C06 500, C07 1000, C08 3000, C09 400, C10 600   = 12650.00
#   W01 100.10, W02 500, W03 300, W04 400, W05 200, W06 5000, W07 500, W08 400                     =  7400.10
#   B01 100, B02 100                                                                               =   200.00
#   total 20250.10; not counted: F01, F02 (failed), J01, J02, X01-X03, U01 (USD), B03 (03-10), P01-P03.
SALES = "20250.10"


def test_sales_in_total_and_over_time(world: Engine) -> None:
    with Session(world) as session:
        cards = report(session, ask(), ["sales_amount", "order_count", "average_order_value"])["kpis"]
        assert cards["sales_amount"]["value"] == SALES
        assert cards["order_count"]["value"] == 20
        # 20250.10 / 20 = 1012.505: half up to the cent → 1012.51 (half to even would give 1012.50).
        assert cards["average_order_value"]["value"] == "1012.51"
        # In US dollars: U01 only.
        assert value(session, ask(currency="USD"), "sales_amount") == "100.00"
        assert value(session, ask(currency="USD"), "order_count") == 1

        # By Shanghai day (the days with sales): B01 (02-23 17:00 UTC) on 02-24, B02 (03-01 23:30 UTC) on 03-02.
        days = breakdown(session, ask(), "sales_amount", "day")["rows"]
        assert [(r["key"], r["value"]) for r in days] == [
            ("2027-02-24", "300.00"),  # C01 200 + B01 100
            ("2027-02-25", "1300.00"),  # C02 (J01 rejected)
            ("2027-02-26", "450.00"),  # C03 (X03 cancelled)
            ("2027-02-27", "5000.00"),  # C04
            ("2027-03-01", "700.00"),  # C05 200 + C06 500
            ("2027-03-02", "1100.00"),  # C07 1000 + B02 100 (F02 failed)
            ("2027-03-03", "3400.00"),  # C08 3000 + C09 400
            ("2027-03-04", "600.00"),  # C10 (X01 cancelled)
            ("2027-03-06", "200.00"),  # W05
            ("2027-03-07", "500.00"),  # W07
            ("2027-03-08", "5000.00"),  # W06
            ("2027-03-09", "1700.10"),  # W01 100.10 + W02 500 + W03 300 + W04 400 + W08 400 (U01 USD)
        ]
        assert by(session, ask(), "order_count", "day")["2027-03-09"] == 5
        # Weeks (from Monday): 02-22: 300+1300+450+5000 = 7050 (5 orders); 03-01: 700+1100+3400+600+200+500 =
        # 6500 (9); 03-08: 5000+1700.10 = 6700.10 (6).
        assert by(session, ask(), "sales_amount", "week") == {
            "2027-02-22": "7050.00",
            "2027-03-01": "6500.00",
            "2027-03-08": "6700.10",
        }
        assert by(session, ask(), "order_count", "week") == {"2027-02-22": 5, "2027-03-01": 9, "2027-03-08": 6}
        # 6500 / 9 = 722.222… → 722.22
        assert by(session, ask(), "average_order_value", "week")["2027-03-01"] == "722.22"
        assert by(session, ask(), "sales_amount", "month") == {
            "2027-02-01": "7050.00",
            "2027-03-01": "13200.10",
        }
        # The same day in UTC: 03-01 UTC holds C05 (01:00 UTC), C06 (06:00 UTC) and B02 (23:30 UTC) = 800.
        march_1 = Period(date(2027, 3, 1), date(2027, 3, 1))
        assert value(session, ask(march_1, zone=UTC_ZONE), "sales_amount") == "800.00"
        assert value(session, ask(march_1), "sales_amount") == "700.00"  # Shanghai: C05, C06


def test_sales_by_dimension_and_product_line_share(world: Engine) -> None:
    with Session(world) as session:
        # web C01 200, C03 450, C05 200, C07 1000, C10 600, W01 100.10, W03 300, W05 200, W07 500, B01 100;
        # b2b C02 1300, C06 500, C09 400, W04 400, W08 400; tmall C04 5000, C08 3000, W02 500, W06 5000, B02 100
        assert by(session, ask(), "sales_amount", "channel") == {
            "b2b": "3000.00",
            "tmall": "13600.00",
            "web": "3650.10",
        }
        assert by(session, ask(), "order_count", "channel") == {"b2b": 5, "tmall": 5, "web": 10}
        # 华东 C01 200, C04 5000, C05 200, C08 3000, C10 600, W01 100.10, W04 400, W06 5000, W07 500, B01 100;
        # 华北 C02 1300, C06 500, C09 400, W05 200, B02 100; 华南 C03 450, C07 1000, W02 500, W03 300, W08 400
        assert by(session, ask(), "sales_amount", "region") == {
            EAST: "15100.10",
            NORTH: "2500.00",
            SOUTH: "2650.00",
        }
        # alice C01 200, C03 450, C05 200, C06 500, C08 3000, C10 600, W01 100.10, W04 400, W06 5000, W07 500,
        # B02 100 (11); bob C02 1300, C04 5000, C07 1000, C09 400, W02 500, W03 300, W05 200, W08 400, B01 100 (9)
        assert by(session, ask(), "sales_amount", "sales_rep") == {A: "11050.10", B: "9200.00"}
        assert by(session, ask(), "order_count", "sales_rep") == {A: 11, B: 9}
        # By product line, only the lines of each line:
        #   peripherals C01 200, C02 300, C05 200, C09 300, C10 500, W01 100.10, W03 300, W04 100, W08 400 = 2400.10
        #   furniture C02 1000, C07 1000 = 2000; office C08 3000; computers C04 5000, W06 5000 = 10000
        #   network C03 450, C06 300, C09 100, W04 300, W05 200, B02 100 = 1450
        #   supplies C06 200, C10 100, W02 500, W07 500, B01 100 = 1400        (sum 20250.10)
        chart = breakdown(session, ask(), "sales_amount", "product_line")["rows"]
        amounts = {r["key"]: r["value"] for r in chart}
        assert amounts == {
            PERIPHERALS: "2400.10",
            FURNITURE: "2000.00",
            OFFICE: "3000.00",
            COMPUTERS: "10000.00",
            NETWORK: "1450.00",
            SUPPLIES: "1400.00",
        }
        shares = {r["key"]: r["share"] for r in chart}
        assert shares[PERIPHERALS] == pytest.approx(2400.10 / 20250.10, abs=1e-12)
        assert shares[COMPUTERS] == pytest.approx(10000 / 20250.10, abs=1e-12)
        assert shares[SUPPLIES] == pytest.approx(1400 / 20250.10, abs=1e-12)
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-12)
        # An order counts once per line it has a line of: peripherals 9 orders, network 6.
        counts = by(session, ask(), "order_count", "product_line")
        assert (counts[PERIPHERALS], counts[NETWORK], counts[FURNITURE]) == (9, 6, 2)


# --- filters, the previous period, scopes ------------------------------------------------------------------------


def test_filters_narrow_each_figure(world: Engine) -> None:
    with Session(world) as session:
        # channel b2b: C02 1300 + C06 500 + C09 400 + W04 400 + W08 400 = 3000
        assert value(session, ask(channel="b2b"), "sales_amount") == "3000.00"
        # OTIF of the web orders that ended in P: C01 ✓, C03 late, C05 not in full, C07 late, C10 ✓, F01 ✓ → 3/6
        assert value(session, ask(channel="web"), "otif_rate") == pytest.approx(0.5, abs=1e-12)
        # region 华南: sales C03 450 + C07 1000 + W02 500 + W03 300 + W08 400 = 2650; stuck W02, W03, W08, P03 → 4
        assert value(session, ask(region=SOUTH), "sales_amount") == "2650.00"
        assert value(session, ask(region=SOUTH), "stuck_orders") == 4
        # warehouse WH-SH (a pick list there, not voided: W03's voided one does not count): C01 200, C04 5000,
        # C05 200, C08 3000, C09 400, C10 600, W04 400, W08 400 = 10200 (U01 is in USD)
        assert value(session, ask(warehouse="WH-SH"), "sales_amount") == "10200.00"
        assert value(session, ask(warehouse="WH-SH"), "order_count") == 8
        # on-time dispatch, WH-GZ orders: C03 late, C07 late, F01 ✓, P03 late → 1/4 (W08 is not dispatched yet)
        assert value(session, ask(warehouse="WH-GZ"), "on_time_dispatch_rate") == pytest.approx(1 / 4, abs=1e-12)
        # carrier kuaidi100 (an order with a parcel of it): C01 200, C03 450, C04 5000, C07 1000, C08 3000,
        # C09 400, W08 400 = 10450 (F01 failed, P03 in February)
        assert value(session, ask(carrier=K100), "sales_amount") == "10450.00"
        # product line supplies: only its lines, 1400 in 5 orders; cycle time of the orders with a furniture line
        # completed in P: C02 49 h, C07 87 h → p50 rank 1 → 49 h, p90 rank 2 → 87 h
        assert value(session, ask(product_line=SUPPLIES), "sales_amount") == "1400.00"
        assert value(session, ask(product_line=SUPPLIES), "order_count") == 5
        assert value(session, ask(product_line=FURNITURE), "cycle_time_p50") == 49 * H
        assert value(session, ask(product_line=FURNITURE), "cycle_time_p90") == 87 * H
        # sales rep bob: 9200; his orders' approval waits: C04 2 h, X02 24 h → p50 rank 1 → 2 h
        assert value(session, ask(sales_rep=B), "sales_amount") == "9200.00"
        assert value(session, ask(sales_rep=B), "approval_wait_p50") == 2 * H
        # Two filters at once: web orders of alice: C01 200, C03 450, C05 200, C10 600, W01 100.10, W07 500
        assert value(session, ask(channel="web", sales_rep=A), "sales_amount") == "2050.10"


def test_report_compares_with_the_previous_period(world: Engine) -> None:
    with Session(world) as session:
        answer = report(session, ask(), ["sales_amount", "order_count", "cycle_time_p50", "stuck_orders"])
        assert answer["previous_period"] == {"first": "2027-02-10", "last": "2027-02-23"}
        cards = answer["kpis"]
        # Previous period (02-10 .. 02-23 Shanghai): P01 300 + P02 600 + P03 300 = 1200 in 3 orders (B01 is
        # 02-24 in Shanghai).
        assert (cards["sales_amount"]["value"], cards["sales_amount"]["previous"]) == (SALES, "1200.00")
        assert cards["sales_amount"]["trend"] == "up"
        assert (cards["order_count"]["value"], cards["order_count"]["previous"]) == (20, 3)
        # Cycle: P01 15+4+20 = 39 h, P02 15+3+4+24 = 46 h → p50 rank 1 → 39 h; now 51 h: up (worse: better=down)
        assert cards["cycle_time_p50"]["previous"] == 39 * H
        assert (cards["cycle_time_p50"]["trend"], cards["cycle_time_p50"]["better"]) == ("up", "down")
        # As of now: no previous period.
        assert (cards["stuck_orders"]["previous"], cards["stuck_orders"]["trend"]) == (None, "none")


def test_scopes_of_sales_warehouse_and_finance_staff(world: Engine) -> None:
    with Session(world) as session:
        set_warehouses(session, "wang", ["WH-SH"])
        session.commit()
        alice, wang, fiona = (session.get(User, name) for name in ("alice", "wang", "fiona"))
        assert alice is not None and wang is not None and fiona is not None
        assert scope_of(session, alice) == KpiScope(sales_rep="alice")
        assert scope_of(session, wang) == KpiScope(warehouses=frozenset({"WH-SH"}))
        assert scope_of(session, fiona) == EVERYTHING

        mine = ask(scope=scope_of(session, alice))
        assert value(session, mine, "sales_amount") == "11050.10"  # alice's 11 orders (above)
        assert value(session, mine, "order_count") == 11
        assert by(session, mine, "sales_amount", "sales_rep") == {A: "11050.10"}
        assert value(session, mine, "stuck_orders") == 2  # W01, P03 (W02, W03, W08 are bob's)
        # A filter cannot widen the scope: bob's orders within alice's scope are none.
        assert value(session, ask(scope=KpiScope(sales_rep="alice"), sales_rep=B), "order_count") == 0

        shanghai = ask(scope=scope_of(session, wang))
        assert value(session, shanghai, "sales_amount") == "10200.00"  # as the WH-SH filter
        assert value(session, shanghai, "order_count") == 8
        # Parcels from WH-SH signed for in P: C01 22, C04 42, C05 20, C08 28, C09's first 30, C10 18 → 160 / 6 h
        assert value(session, shanghai, "transit_time_avg") == pytest.approx(160 / 6, abs=1e-9)
        everything = ask(scope=scope_of(session, fiona))
        assert value(session, everything, "sales_amount") == SALES


# --- carriers -----------------------------------------------------------------------------------------------------


def test_carrier_kpis_in_total_and_by_carrier(world: Engine) -> None:
    with Session(world) as session:
        # Signed for in P (hours from dispatch): kuaidi100 C01 22, C03 26, C04 42, C07 14, C08 28, C09 30
        # (= 162, 6 parcels); 17track C02 32, C05 20, C06 24, C09 26, C10 18 (= 120, 5). 282 / 11.
        assert value(session, ask(), "transit_time_avg") == pytest.approx(282 / 11, abs=1e-9)
        assert by(session, ask(), "transit_time_avg", "carrier") == pytest.approx({K100: 27.0, T17: 24.0})
        # On time (signed by promised_by): C04 kept no promise; kuaidi100 (2 days) all 5 on time; 17track (1 day)
        # C02 32 h late, C09 26 h late, C06 24 h exactly on time → 3/5. 8 / 10.
        assert value(session, ask(), "on_time_delivery_rate") == pytest.approx(8 / 10, abs=1e-12)
        assert by(session, ask(), "on_time_delivery_rate", "carrier") == pytest.approx({K100: 1.0, T17: 3 / 5})
        assert drill(session, ask(), "on_time_delivery_rate") == ["C02", "C09"]  # 8 h late, then 2 h
        # A failed attempt before the signature: C03 (kuaidi100), C10 (17track) → 9/11; 5/6 and 4/5.
        assert value(session, ask(), "first_attempt_rate") == pytest.approx(9 / 11, abs=1e-12)
        assert by(session, ask(), "first_attempt_rate", "carrier") == pytest.approx({K100: 5 / 6, T17: 4 / 5})
        assert drill(session, ask(), "first_attempt_rate") == ["C03", "C10"]
        # Journeys ended in P: the 11 signed for + F01 refused (kuaidi100) + F02 lost (17track) → 11/13;
        # kuaidi100 6/7, 17track 5/6.
        assert value(session, ask(), "sign_for_rate") == pytest.approx(11 / 13, abs=1e-12)
        assert by(session, ask(), "sign_for_rate", "carrier") == pytest.approx({K100: 6 / 7, T17: 5 / 6})
        assert drill(session, ask(), "sign_for_rate") == ["F01", "F02"]
        # Dispatched in P: kuaidi100 C01, C03, C04, C07, C08, C09, F01, W08, P03 (9); 17track C02, C05, C06, C09,
        # C10, F02, W05 (7) = 16. An exception or a failed attempt: C03, F01 (kuaidi100); C10, F02, W05 (17track)
        # → 5/16; 2/9 and 3/7.
        assert value(session, ask(), "exception_rate") == pytest.approx(5 / 16, abs=1e-12)
        assert by(session, ask(), "exception_rate", "carrier") == pytest.approx({K100: 2 / 9, T17: 3 / 7})
        # The carrier filter is the parcel's own carrier; the warehouse filter the parcel's warehouse: WH-BJ's
        # parcels signed for: C02 32, C06 24, C09's second 26 → 82 / 3.
        assert value(session, ask(carrier=T17), "sign_for_rate") == pytest.approx(5 / 6, abs=1e-12)
        assert value(session, ask(warehouse="WH-BJ"), "transit_time_avg") == pytest.approx(82 / 3, abs=1e-9)


# --- stock -------------------------------------------------------------------------------------------------------

S = Period(date(2027, 3, 3), date(2027, 3, 9))  # 7 days
COST = {"SKU-1001": "123.38", "SKU-1015": "55.18", "SKU-1002": "309.38", "SKU-1021": "160.58", "SKU-1016": "24.18"}


def build_stock(session: Session) -> None:
    """The orders' world, and instead of the seeded stock a stock history of fixed times (the orders' own
    reservations are gone with the seeded lots: their facts are already derived).

    Unit costs are the seed's, 0.62 × list price: SKU-1001 123.38, SKU-1002 309.38, SKU-1015 55.18, SKU-1016 24.18,
    SKU-1021 160.58; SKU-1024 is given none. Every reorder level is 50.

      WH-SH SKU-1001  lot L1 received 2026-12-01 (99 days old), 50 on hand at the start of S; 20 locked 03-04,
                      shipped 03-05; 10 locked today 03-10 08:00. Now 30 on hand, 20 available.
      WH-SH SKU-1015  lot L2 received 2027-01-20, 5 on hand; 5 locked 03-03, shipped 03-04 (L2 empty); lot L3 of
                      25 received 03-06 14:00. Now 25, available 25.
      WH-BJ SKU-1002  first lot L4 of 60 received 03-05 11:00; 10 locked 03-07, released 03-08. Now 60.
      WH-GZ SKU-1021  lot L5 of 8 received 2026-08-01 (221 days), expired 2027-03-01; lot L8 of 12 received
                      2026-12-10 01:00 Shanghai (= 12-09 17:00 UTC: 90 days old in Shanghai, 91 in UTC). Now 20.
      WH-GZ SKU-1016  lot L6 received 2026-11-15, 12 on hand all locked since 03-02, shipped 03-08. Now 0.
      WH-BJ SKU-1024  lot L7 of 7 received 2027-01-31 20:00 UTC (02-01 Shanghai, 37 days). No unit cost.
    """
    session.exec(delete(Reservation))
    session.exec(delete(StockReceipt))
    session.exec(delete(StockLot))
    product = session.get(Product, "SKU-1024")
    assert product is not None
    product.unit_cost = None
    session.add(product)
    for sku, cost in COST.items():  # the seed's, as the comments say
        row = session.get(Product, sku)
        assert row is not None and row.unit_cost == Decimal(cost) and row.reorder_level == 50

    def lot(name: str, warehouse: str, sku: str, received: datetime, on_hand: int, **kw: Any) -> int:
        row = StockLot(
            warehouse=warehouse, sku=sku, bin="A-01-01", lot=name, received_at=received, on_hand=on_hand, **kw
        )
        session.add(row)
        session.flush()
        return row.id or 0

    def hold(
        key: str, lot_id: int, warehouse: str, sku: str, qty: int, state: str, made: datetime, moved: datetime
    ) -> None:
        session.add(
            Reservation(key=key, order_no=f"STK-{key}", line_no=1, sku=sku, warehouse=warehouse, lot_id=lot_id, qty=qty,
                        state=state, created_at=made, updated_at=moved)
        )  # fmt: skip

    def receipt(lot_id: int, name: str, warehouse: str, sku: str, qty: int, at: datetime) -> None:
        session.add(
            StockReceipt(receipt_no=name, sku=sku, warehouse=warehouse, lot_id=lot_id, lot=name, qty=qty, at=at)
        )

    l1 = lot("L1", "WH-SH", "SKU-1001", sh(12, 1, 10, year=2026), 30)
    receipt(l1, "L1", "WH-SH", "SKU-1001", 50, sh(12, 1, 10, year=2026))
    hold("R1", l1, "WH-SH", "SKU-1001", 20, ReservationState.CONSUMED, sh(3, 4, 10), sh(3, 5, 10))
    hold("R2", l1, "WH-SH", "SKU-1001", 10, ReservationState.LOCKED, sh(3, 10, 8), sh(3, 10, 8))
    l2 = lot("L2", "WH-SH", "SKU-1015", sh(1, 20, 10), 0)
    hold("R3", l2, "WH-SH", "SKU-1015", 5, ReservationState.CONSUMED, sh(3, 3, 9), sh(3, 4, 15))
    l3 = lot("L3", "WH-SH", "SKU-1015", sh(3, 6, 14), 25)
    receipt(l3, "L3", "WH-SH", "SKU-1015", 25, sh(3, 6, 14))
    l4 = lot("L4", "WH-BJ", "SKU-1002", sh(3, 5, 11), 60)
    receipt(l4, "L4", "WH-BJ", "SKU-1002", 60, sh(3, 5, 11))
    hold("R4", l4, "WH-BJ", "SKU-1002", 10, ReservationState.RELEASED, sh(3, 7, 10), sh(3, 8, 10))
    lot("L5", "WH-GZ", "SKU-1021", sh(8, 1, 10, year=2026), 8, expires_at=sh(3, 1, 0))
    lot("L8", "WH-GZ", "SKU-1021", sh(12, 10, 1, year=2026), 12)
    l6 = lot("L6", "WH-GZ", "SKU-1016", sh(11, 15, 10, year=2026), 0)
    hold("R5", l6, "WH-GZ", "SKU-1016", 12, ReservationState.CONSUMED, sh(3, 2, 10), sh(3, 8, 9))
    lot("L7", "WH-BJ", "SKU-1024", utc(1, 31, 20), 7)
    session.commit()


def test_stock_kpis(world: Engine) -> None:
    with Session(world) as session:
        build_stock(session)
        # Closing available (on hand − locked, an expired lot counted) per day 03-03 .. 03-09, walked back from
        # now through the movements:
        #   WH-SH 1001  50 30 30 30 30 30 30   (on hand 50 50 30 30 30 30 30)
        #   WH-SH 1015   0  0  0 25 25 25 25   (on hand  5  0  0 25 25 25 25)   3 days out
        #   WH-BJ 1002   -  - 60 60 50 60 60   (on hand from 03-05: 60 ×5; nothing before its first lot)
        #   WH-GZ 1021  20 ×7                  (on hand 20 ×7)
        #   WH-GZ 1016   0 ×7                  (on hand 12 12 12 12 12 0 0)     7 days out
        #   WH-BJ 1024   7 ×7                                                    (no cost)
        # SKU-days 7+7+5+7+7+7 = 40, out 3+7 = 10 → 0.25.
        assert value(session, ask(S), "stock_out_rate") == pytest.approx(10 / 40, abs=1e-12)
        # Shipped in S × cost: 20 × 123.38 + 5 × 55.18 + 12 × 24.18 = 2467.60 + 275.90 + 290.16 = 3033.66.
        # Stock value per day summed over S: 1001 250 u·d × 123.38 = 30845.00; 1015 105 × 55.18 = 5793.90;
        # 1002 300 × 309.38 = 92814.00; 1021 140 × 160.58 = 22481.20; 1016 60 × 24.18 = 1450.80 → 153384.90,
        # average over 7 days 21912.128571…; turnover 3033.66 / 21912.128571… = 0.138447…
        assert value(session, ask(S), "inventory_turnover") == pytest.approx(3033.66 / (153384.90 / 7), rel=1e-9)
        # Up to today only: 03-08 .. 03-14 counts 03-08, 03-09, 03-10 (today, closing at the levels now):
        # 6 pairs × 3 days = 18; out: WH-GZ 1016 ×3 → 3/18.
        beyond = Period(date(2027, 3, 8), date(2027, 3, 14))
        assert value(session, ask(beyond), "stock_out_rate") == pytest.approx(3 / 18, abs=1e-12)
        # A period before any lot (or after today) has no SKU-days.
        assert value(session, ask(Period(date(2027, 3, 11), date(2027, 3, 12))), "stock_out_rate") is None

        # Now: lots with units, by age of receipt (days, Shanghai): L1 30 u 99 d (91-180), L3 25 u 4 d (0-30),
        # L4 60 u 5 d (0-30), L5 8 u 221 d (181+), L7 7 u 37 d (31-60), L8 12 u 90 d (61-90). 142 units.
        assert value(session, ask(S), "stock_units") == 142
        # 30 × 123.38 + 25 × 55.18 + 60 × 309.38 + (8 + 12) × 160.58 = 3701.40 + 1379.50 + 18562.80 + 3211.60
        # = 26855.30 (SKU-1024 has no cost)
        assert value(session, ask(S), "stock_value") == "26855.30"
        # Older than 90 days: L1 30 + L5 8 = 38 of 142 (L8 is exactly 90 days old in Shanghai).
        assert value(session, ask(S), "aged_stock_share") == pytest.approx(38 / 142, abs=1e-12)
        ages = breakdown(session, ask(S), "stock_units", "age")["rows"]
        assert [(r["key"], r["value"]) for r in ages] == [
            ("0-30", 85),  # 25 + 60
            ("31-60", 7),
            ("61-90", 12),
            ("91-180", 30),
            ("181+", 8),
        ]
        # In UTC L8 is 91 days old: aged too (38 + 12 = 50).
        assert value(session, ask(S, zone=UTC_ZONE), "aged_stock_share") == pytest.approx(50 / 142, abs=1e-12)
        # Available now (expired lots promise nothing) below 50: WH-SH 1001 (20), WH-SH 1015 (25), WH-GZ 1021 (12:
        # L5 expired), WH-GZ 1016 (0), WH-BJ 1024 (7) → 5; WH-BJ 1002 (60) is not.
        assert value(session, ask(S), "skus_below_reorder") == 5

        # Filters and scope: WH-SH only: pairs 1001 and 1015: 14 SKU-days, 3 out; shipped 2467.60 + 275.90 =
        # 2743.50 over (30845.00 + 5793.90) / 7; 55 units; 2 below reorder.
        for a in (ask(S, warehouse="WH-SH"), ask(S, scope=KpiScope(warehouses=frozenset({"WH-SH"})))):
            assert value(session, a, "stock_out_rate") == pytest.approx(3 / 14, abs=1e-12)
            assert value(session, a, "inventory_turnover") == pytest.approx(2743.50 / (36638.90 / 7), rel=1e-9)
            assert value(session, a, "stock_units") == 55
            assert value(session, a, "skus_below_reorder") == 2
        # Product line peripherals (1001, 1002): 30 + 60 units.
        assert value(session, ask(S, product_line=PERIPHERALS), "stock_units") == 90
        # A sales rep's scope holds no stock.
        assert value(session, ask(S, scope=KpiScope(sales_rep="alice")), "stock_units") == 0


# --- late news ---------------------------------------------------------------------------------------------------


def _stage(session: Session, order_no: str) -> dict[str, tuple[float, datetime | None]]:
    rows = session.exec(select(OrderStageTime).where(OrderStageTime.order_no == order_no)).all()
    return {r.stage: (r.seconds, r.left_at) for r in rows}


def test_late_events_leave_the_facts_exact(world: Engine) -> None:
    with Session(world) as session:
        # W03's ALLOCATED event (seq 3, 03-09 01:30) had not been written when the facts were derived: APPROVED
        # looked like 01:10 → 02:00 = 50 min.
        allocated = session.exec(select(OrderEvent).where(OrderEvent.order_no == "W03", OrderEvent.seq == 3)).one()
        session.delete(allocated)
        session.flush()
        order_facts.refresh(session, "W03", SH)
        session.commit()
        assert _stage(session, "W03") == {
            "RECEIVED": (600.0, sh(3, 9, 1, 10)),
            "APPROVED": (3000.0, sh(3, 9, 2)),
            "PICKING": (0.0, None),
        }
        # It arrives late (an earlier time, its own seq): refreshed, the stage times are exact again.
        session.add(OrderEvent(order_no="W03", seq=3, status="ALLOCATED", at=sh(3, 9, 1, 30)))
        order_facts.refresh(session, "W03", SH)
        session.commit()
        assert _stage(session, "W03") == {
            "RECEIVED": (600.0, sh(3, 9, 1, 10)),
            "APPROVED": (1200.0, sh(3, 9, 1, 30)),
            "ALLOCATED": (1800.0, sh(3, 9, 2)),
            "PICKING": (0.0, None),
        }
        assert by(session, ask(), "stage_dwell_p90", "stage")["APPROVED"] == 1200.0

        # A later transition: W03 is dispatched at 03-10 09:00 (31 h in PICKING); W04 at 08:00 (10 h). Before it no
        # PICKING visit ended today: the same question asked again after it is answered anew (figures remembered
        # per data version).
        today = Period(date(2027, 3, 10), date(2027, 3, 10))
        assert "PICKING" not in by(session, ask(today), "stage_dwell_p90", "stage")
        for order_no, seq, at in (("W03", 5, sh(3, 10, 9)), ("W04", 5, sh(3, 10, 8))):
            session.add(OrderEvent(order_no=order_no, seq=seq, status="DISPATCHED", at=at))
            order = session.get(SalesOrder, order_no)
            assert order is not None
            order.status = "DISPATCHED"
            session.add(order)
            order_facts.refresh(session, order_no, SH)
        session.commit()
        assert _stage(session, "W03")["PICKING"] == (31 * H, sh(3, 10, 9))
        facts = session.get(OrderFacts, "W03")
        assert facts is not None
        assert (facts.status, facts.status_since, facts.dispatched_at) == ("DISPATCHED", sh(3, 10, 9), sh(3, 10, 9))
        # Stuck now: W01, W02, W08, P03 (W03 left PICKING an hour ago) → 4.
        assert value(session, ask(), "stuck_orders") == 4
        # Today's PICKING visits that ended: W04 10 h, W03 31 h → p50 rank 1 = 10 h, p90 rank 2 = 31 h.
        assert by(session, ask(today), "stage_dwell_p90", "stage")["PICKING"] == 31 * H
        assert by(session, ask(today), "stage_dwell_p50", "stage")["PICKING"] == 10 * H
        assert drill(session, ask(today), "stage_dwell_p90", "stage", "PICKING") == ["W03", "W04"]
        # Refreshing again changes nothing.
        before = _stage(session, "W03")
        order_facts.refresh(session, "W03", SH)
        session.commit()
        assert _stage(session, "W03") == before


def test_the_cards_totals_agree_with_the_rows(world: Engine) -> None:
    """A family's cards and most of its breakdowns are summed and ranked by the database (`totals`); the others and
    the drill-downs use the rows, by the same rules: for every family, dimension and a spread of questions the two
    give the same figures."""
    questions = [
        ask(),
        ask(Period(date(2027, 2, 10), date(2027, 2, 23))),
        ask(channel="web"),
        ask(region=SOUTH, sales_rep=B),
        ask(warehouse="WH-SH"),
        ask(carrier=T17),
        ask(product_line=NETWORK),
        ask(currency="USD"),
        ask(scope=KpiScope(sales_rep="alice")),
        ask(scope=KpiScope(warehouses=frozenset({"WH-BJ"}))),
    ]
    with Session(world) as session:
        for name, family in FAMILIES.items():
            for by in (None, *family.dimensions):
                for a in questions:
                    from_rows = figures_from_rows(session, a, name, by)
                    expected = {
                        group: {k: v if v is None or isinstance(v, Decimal) else pytest.approx(v, abs=1e-9)
                                for k, v in values.items()}
                        for group, values in from_rows.items()
                    }  # fmt: skip
                    assert figures(session, a, name, by) == expected, (name, by, a.filters, a.scope)


def test_a_settled_periods_figures_are_checked_not_recomputed(world: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The previous period (02-10 .. 02-23, ended before now) keeps its figures while new rows belong to later
    orders; a late event of one of its orders, or a receipt dated inside it, has them computed again — exact."""
    monkeypatch.setattr(kpi_memory, "COMMIT_MARGIN", 0.0)  # one process, one connection: a row is committed at once
    monkeypatch.setattr(kpi_memory, "_SAMPLE_EVERY", 0.0)
    forget_figures()
    computed: list[tuple[str, Period]] = []
    real = kpis._computed

    def counting(session: Session, a: Ask, family: str, by: str | None) -> Any:
        computed.append((family, a.filters.period))
        return real(session, a, family, by)

    monkeypatch.setattr(kpis, "_computed", counting)
    settled = ask(Period(date(2027, 2, 10), date(2027, 2, 23)))
    with Session(world) as session:
        # P01's ALLOCATED (seq 3, 02-15 09:30) has not arrived yet: APPROVED 09:10 → PICKING 10:00, 50 min.
        allocated = session.exec(select(OrderEvent).where(OrderEvent.order_no == "P01", OrderEvent.seq == 3)).one()
        session.delete(allocated)
        session.flush()
        order_facts.refresh(session, "P01", SH)
        session.commit()
        dwell = figures(session, settled, "stages", "stage")
        stock = figures(session, settled, "stock_days")
        # P01 and P02 left their stages in it: APPROVED 50 min (P01) and 20 min (P02), AWAITING_APPROVAL 3 h (P02)
        assert dwell["APPROVED"] == {"stage_dwell_p50": 20 * 60.0, "stage_dwell_p90": 50 * 60.0}
        assert dwell["AWAITING_APPROVAL"]["stage_dwell_p90"] == 3 * H
        assert len(computed) == 2

        # Today's news of today's orders: W01 approved, a receipt now. The settled figures hold; today's are new.
        session.add(OrderEvent(order_no="W01", seq=2, status="APPROVED", at=NOW))
        order_facts.refresh(session, "W01", SH)
        lot = session.exec(select(StockLot).where(StockLot.warehouse == "WH-SH", StockLot.sku == "SKU-1001")).first()
        assert lot is not None and lot.id is not None
        session.add(StockReceipt(sku="SKU-1001", warehouse="WH-SH", lot_id=lot.id, lot=lot.lot, qty=5, at=NOW))
        session.commit()
        assert figures(session, settled, "stages", "stage") == dwell
        assert figures(session, settled, "stock_days") == stock
        assert len(computed) == 2
        figures(session, ask(), "stages", "stage")
        assert computed[-1] == ("stages", P)

        # P01's ALLOCATED arrives late (a carrier-slow activity's retry, say): APPROVED 20 min again, ALLOCATED
        # 30 min — computed again, the same as from the rows.
        session.add(OrderEvent(order_no="P01", seq=3, status="ALLOCATED", at=sh(2, 15, 9, 30)))
        order_facts.refresh(session, "P01", SH)
        session.commit()
        count = len(computed)
        after = figures(session, settled, "stages", "stage")
        assert len(computed) == count + 1
        assert after == figures_from_rows(session, settled, "stages", "stage")
        assert after["APPROVED"] == {"stage_dwell_p50": 20 * 60.0, "stage_dwell_p90": 20 * 60.0}
        # A receipt booked with a date inside the period (a late paper delivery note): the stock days anew.
        session.add(StockReceipt(sku="SKU-1001", warehouse="WH-SH", lot_id=lot.id, lot=lot.lot, qty=7, at=sh(2, 20, 9)))
        session.commit()
        assert figures(session, settled, "stock_days") == figures_from_rows(session, settled, "stock_days")
        assert len(computed) == count + 2
        # Asked again with nothing new: from memory.
        assert figures(session, settled, "stock_days") == figures_from_rows(session, settled, "stock_days")
        assert len(computed) == count + 2
        # (The check is of the period, not of a family: the receipt has the dwell computed again too, once.)
        assert figures(session, settled, "stages", "stage") == after
        assert figures(session, settled, "stages", "stage") == after
        assert len(computed) == count + 3


def test_a_young_process_remembers_settled_periods_per_data_version(world: Engine) -> None:
    """Until a data version seen COMMIT_MARGIN seconds ago exists (PostgreSQL commits ids out of order), a settled
    period is remembered like an open one: by the data version, so the next change is counted at once."""
    forget_figures()
    settled = ask(Period(date(2027, 2, 10), date(2027, 2, 23)))
    with Session(world) as session:
        allocated = session.exec(select(OrderEvent).where(OrderEvent.order_no == "P01", OrderEvent.seq == 3)).one()
        session.delete(allocated)
        session.flush()
        order_facts.refresh(session, "P01", SH)
        session.commit()
        assert figures(session, settled, "stages", "stage")["APPROVED"]["stage_dwell_p90"] == 50 * 60.0
        assert not kpi_memory._SETTLED
        session.add(OrderEvent(order_no="P01", seq=3, status="ALLOCATED", at=sh(2, 15, 9, 30)))
        order_facts.refresh(session, "P01", SH)
        session.commit()
        assert figures(session, settled, "stages", "stage")["APPROVED"]["stage_dwell_p90"] == 20 * 60.0
