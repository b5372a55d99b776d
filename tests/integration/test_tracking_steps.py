"""Shipping and tracking steps one at a time (Temporal's activity test environment, real databases): what a poll
makes of a carrier that fails, and what recording a dispatch or carrier news does when two attempts run at once."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.tracking
from activities.inventory import InventoryActivities
from activities.shipping import ShippingActivities
from activities.tracking import TrackingActivities
from core.config import Settings
from core.db import is_postgres
from models.contracts import AllocateInput, DispatchRecord, PollInput
from models.status import TrackingStatus
from models.tables import Invoice, InvoiceLine, Reservation, ReservationState, Shipment, StockLot, TrackingEvent
from models.tracking import TrackingEventIn, TrackingSnapshot
from services.billing.invoices import InvoicePolicy
from services.tracking import record_snapshot
from tests.support.read_model import add_order
from workflows.contract import STALL_ERRORS, ErrorType


class _AdapterWithAParsingBug:
    """A carrier adapter whose answer handling trips over something (here: a ValueError, as pydantic's
    ValidationError is one): the kind of stray error an adapter can raise on an answer nobody foresaw."""

    code = "sim"

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        raise ValueError(f"1 validation error for TrackingSnapshot: unexpected shape for {tracking_no}")


async def _poll(settings: Settings, engine: Engine, carrier: str) -> ApplicationError:
    async with httpx.AsyncClient() as http:
        steps = TrackingActivities(engine, settings, http)
        inp = PollInput(
            order_no="T-POLL-1", carrier=carrier, tracking_no="SIMPOLL1", known_status=TrackingStatus.PENDING,
            known_events=0,
        )  # fmt: skip
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(steps.poll_parcel, inp)
    return failure.value


async def test_a_stray_parsing_error_is_no_news_not_an_unknown_carrier(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities.tracking, "carrier_client", lambda *_: _AdapterWithAParsingBug())
    failure = await _poll(settings, engine, "sim")
    # Retried at the poll interval and counted as a quiet carrier (stall, then expiry), never the end of tracking.
    assert failure.type != ErrorType.UNKNOWN_CARRIER and not failure.non_retryable
    assert failure.type in STALL_ERRORS
    assert "unexpected shape" in failure.message


async def test_an_unknown_carrier_code_still_ends_the_poll_for_good(settings: Settings, engine: Engine) -> None:
    failure = await _poll(settings, engine, "no-such-carrier")
    assert failure.type == ErrorType.UNKNOWN_CARRIER and failure.non_retryable


# --- two writers at once ----------------------------------------------------------------------------------------


def _waiting_backends(engine: Engine) -> int:
    with engine.connect() as connection:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        found = connection.execute(text(query)).scalar_one()
    return int(found)


def race_behind_a_lock(engine: Engine, lock_sql: str, writers: list[threading.Thread], waiting: int) -> None:
    """Start `writers` while another transaction holds a row lock (`lock_sql`, Postgres); release it only once
    `waiting` of them wait for a lock, so their reads happen before either writes — the worst interleaving."""
    with engine.connect() as blocker:
        blocker.execute(text(lock_sql))
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 20
        while _waiting_backends(engine) < waiting:
            assert time.monotonic() < deadline, "the writers never queued behind the lock"
            time.sleep(0.02)
        blocker.rollback()
    for writer in writers:
        writer.join(timeout=30)
        assert not writer.is_alive()


def _shipment(engine: Engine, carrier: str, tracking_no: str) -> None:
    with Session(engine) as session:
        session.add(
            Shipment(
                order_no="T-RACE-1", warehouse="WH-SH", carrier=carrier, tracking_no=tracking_no,
                dispatched_at=datetime.now(UTC),
            )
        )  # fmt: skip
        session.commit()


def test_a_push_racing_a_sweep_records_the_news_once(engine: Engine, settings: Settings) -> None:
    number = f"RACE{uuid.uuid4().hex[:8].upper()}"
    _shipment(engine, "17track", number)
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    news = TrackingSnapshot(
        carrier="17track",
        tracking_no=number,
        status=TrackingStatus.IN_TRANSIT,
        events=[
            TrackingEventIn(status=TrackingStatus.PICKED_UP, at=start, description="picked up"),
            TrackingEventIn(status=TrackingStatus.IN_TRANSIT, at=start + timedelta(hours=3), description="sorting"),
        ],
    )
    outcomes: list[object] = []

    def record() -> None:
        try:
            outcomes.append(record_snapshot(engine, news, InvoicePolicy.of(settings)))
        except Exception as exc:  # what the webhook would have answered 500 with
            outcomes.append(exc)

    writers = [threading.Thread(target=record) for _ in range(2)]
    if is_postgres(engine):
        lock = f"BEGIN; SELECT id FROM shipments WHERE tracking_no = '{number}' FOR UPDATE"
        race_behind_a_lock(engine, lock, writers, waiting=2)
    else:  # SQLite serialises writers at BEGIN: the same two, one after the other
        for writer in writers:
            writer.start()
            writer.join()
    assert sorted(map(repr, outcomes)) == ["0", "2"], outcomes  # one stored both events, the other nothing new
    with Session(engine) as session:
        stored = session.exec(select(TrackingEvent).where(TrackingEvent.tracking_no == number)).all()
        shipment = session.exec(select(Shipment).where(Shipment.tracking_no == number)).one()
    assert len(stored) == 2 and shipment.status == TrackingStatus.IN_TRANSIT


# --- dispatch: a stale attempt and its retry ------------------------------------------------------------------


def _allocated(engine: Engine, settings: Settings, order_no: str) -> list[int]:
    """An order holding 150 units of SKU-1001 in WH-SH (two lots): the lots' ids."""
    add_order(engine, order_no, rep="alice", sku="SKU-1001")  # registered, as every order is before it ships
    request = AllocateInput(order_no=order_no, ship_to_region="华东", lines=[(1, "SKU-1001", 150)], allow_split=False)
    outcome = ActivityEnvironment().run(InventoryActivities(engine, settings).allocate_stock, request)
    assert sum(a.qty for a in outcome.allocations) == 150 and {a.warehouse for a in outcome.allocations} == {"WH-SH"}
    return sorted({a.lot_id for a in outcome.allocations})


def _on_hand(engine: Engine, lot_ids: list[int]) -> int:
    with Session(engine) as session:
        return sum(lot.on_hand for lot in session.exec(select(StockLot).where(col(StockLot.id).in_(lot_ids))))


def test_a_dispatch_recorded_twice_at_once_takes_the_stock_once(engine: Engine, settings: Settings) -> None:
    order_no = f"T-DISPATCH-{uuid.uuid4().hex[:6]}"
    lots = _allocated(engine, settings, order_no)
    before = _on_hand(engine, lots)
    record = DispatchRecord(
        order_no=order_no, warehouse="WH-SH", carrier="sim", tracking_no=f"SIMD{uuid.uuid4().hex[:8]}",
        at=datetime.now(UTC),
    )  # fmt: skip
    shipping = ShippingActivities(engine, settings)
    failures: list[BaseException] = []

    def attempt() -> None:
        try:
            ActivityEnvironment().run(shipping.record_dispatch, record)
        except BaseException as exc:
            failures.append(exc)

    attempts = [threading.Thread(target=attempt) for _ in range(2)]
    if is_postgres(engine):
        # Both attempts read the order's reservations as still locked, then queue behind the lot's row lock.
        lock = f"BEGIN; SELECT id FROM stock_lots WHERE id = {lots[0]} FOR UPDATE"
        race_behind_a_lock(engine, lock, attempts, waiting=2)
    else:
        for one in attempts:
            one.start()
            one.join()
    assert failures == []  # the stale attempt finds the work done: no error, nothing taken twice
    assert _on_hand(engine, lots) == before - 150
    ActivityEnvironment().run(shipping.record_dispatch, record)  # and a later retry changes nothing either
    assert _on_hand(engine, lots) == before - 150
    with Session(engine) as session:
        states = {r.state for r in session.exec(select(Reservation).where(Reservation.order_no == order_no))}
        shipments = session.exec(select(Shipment).where(Shipment.tracking_no == record.tracking_no)).all()
    assert states == {ReservationState.CONSUMED} and len(shipments) == 1
    with Session(engine) as session:  # billed once, with what the parcel carried
        [invoice] = session.exec(select(Invoice).where(Invoice.order_no == order_no)).all()
        lines = session.exec(select(InvoiceLine).where(InvoiceLine.invoice_no == invoice.invoice_no)).all()
    assert [(line.sku, line.qty) for line in lines] == [("SKU-1001", 150)] and invoice.tracking_no == record.tracking_no
