"""Billing at the order's moves (services/billing/triggers.py) on both databases: the invoice policy's point and unit,
cash on delivery collected when the parcel is signed for, credit notes for parcels that never arrive, write-offs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.db import unit_of_work
from models.status import OrderStatus, TrackingStatus
from models.tables import (
    Customer,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
    StockLot,
)
from models.tracking import TrackingEventIn, TrackingSnapshot
from services.billing.credit_notes import issue_credit_note, write_off
from services.billing.invoices import Billed, InvoicePolicy
from services.billing.ledger import balances
from services.billing.payments import open_invoices
from services.billing.triggers import cod_reference, collect_cod, on_approved, on_dispatched, on_stopped
from services.errors import CommandError
from services.queries.order_view import order_view
from services.tracking import record_snapshot
from tests.support.orders import make_order

D = Decimal
RATES = {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")}
NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)


def policy(timing: str = "dispatch/parcel", **by_channel: str) -> InvoicePolicy:
    return InvoicePolicy("OF", RATES, UTC, timing, by_channel)


def placed(
    engine: Engine,
    parcels: dict[str, list[tuple[str, int, str]]],
    *,
    method: str = "credit",
    customer: str = "C-1003",
    channel: str = "web",
) -> str:
    """An order whose lines are reserved at the warehouses given (warehouse → its lines), as allocation leaves it."""
    no = f"BT-{uuid.uuid4().hex[:8].upper()}"
    lines = [line for warehouse_lines in parcels.values() for line in warehouse_lines]
    order = make_order(no, lines, customer_id=customer, channel=channel, payment={"method": method, "paid": False})
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=no, workflow_id=f"order-{no}", customer_id=customer, channel=channel, sales_rep="alice",
                order_type="standard", payment_method=method, currency="CNY", total=order.total,
                status=OrderStatus.PICKING.value, paid=False, payload=order.model_dump(mode="json"),
                content_hash=order.content_hash(), created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
        line_no = 0
        for warehouse, warehouse_lines in parcels.items():
            for sku, qty, _ in warehouse_lines:
                line_no += 1
                lot = session.exec(select(StockLot.id).where(StockLot.warehouse == warehouse)).first()
                assert lot is not None
                session.add(
                    Reservation(
                        key=f"{no}:{line_no}",
                        order_no=no,
                        line_no=line_no,
                        sku=sku,
                        warehouse=warehouse,
                        lot_id=lot,
                        qty=qty,
                    )  # fmt: skip
                )
    return no


def dispatch(engine: Engine, no: str, warehouse: str, billing: InvoicePolicy) -> str:
    """What record_dispatch does for billing: consume the warehouse's reservations, add the shipment, tell billing."""
    tracking_no = f"SIM{uuid.uuid4().hex[:10].upper()}"
    with unit_of_work(engine) as session:
        shipped: dict[int, int] = {}
        for r in session.exec(
            select(Reservation).where(Reservation.order_no == no, Reservation.warehouse == warehouse)
        ):
            r.state = ReservationState.CONSUMED
            shipped[r.line_no] = shipped.get(r.line_no, 0) + r.qty
            session.add(r)
        session.add(
            Shipment(order_no=no, warehouse=warehouse, carrier="sim", tracking_no=tracking_no, dispatched_at=NOW)
        )
        session.flush()
        order = session.get(SalesOrder, no)
        assert order is not None
        on_dispatched(
            session, order, [Billed(n, q) for n, q in sorted(shipped.items())], "sim", tracking_no, billing, NOW
        )
    return tracking_no


def carrier_says(engine: Engine, tracking_no: str, status: TrackingStatus, billing: InvoicePolicy) -> None:
    at = NOW + timedelta(days=1)
    snapshot = TrackingSnapshot(
        carrier="sim",
        tracking_no=tracking_no,
        status=status,
        events=[TrackingEventIn(status=status, at=at, description=status.value)],
        signed_by="Li Lei" if status == TrackingStatus.DELIVERED else None,
        signed_at=at if status == TrackingStatus.DELIVERED else None,
    )
    record_snapshot(engine, snapshot, billing)


def invoices(engine: Engine, no: str) -> list[Invoice]:
    with Session(engine) as session:
        return list(session.exec(select(Invoice).where(Invoice.order_no == no).order_by(col(Invoice.seq))).all())


def settlement_of(engine: Engine, no: str) -> str:
    with Session(engine) as session:
        view = order_view(session, no)
    assert view is not None
    return str(view["settlement"])


def test_a_cod_parcel_signed_for_is_paid_by_the_carriers_collection_once(engine: Engine) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "50.00")]}, method="cod")
    tracking_no = dispatch(engine, no, "WH-SH", billing)
    [invoice] = invoices(engine, no)
    assert settlement_of(engine, no) == "unpaid"
    carrier_says(engine, tracking_no, TrackingStatus.DELIVERED, billing)
    carrier_says(engine, tracking_no, TrackingStatus.DELIVERED, billing)  # the same news again: booked once
    with Session(engine) as session:
        paid = session.exec(select(LedgerEntry).where(LedgerEntry.order_no == no, LedgerEntry.kind == "payment")).all()
        assert [(e.amount, e.invoice_no, e.reference) for e in paid] == [
            (D("-100.00"), invoice.invoice_no, cod_reference("sim", tracking_no))
        ]
        assert open_invoices(session, no) == []
    assert settlement_of(engine, no) == "paid"


def test_a_cod_parcel_refused_at_the_door_cancels_its_invoice_with_a_credit_note(engine: Engine) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 3, "33.33"), ("SKU-1006", 1, "129.00")]}, method="cod")
    with Session(engine) as session:
        before = balances(session, ["C-1003"]).get("C-1003", D("0"))
    tracking_no = dispatch(engine, no, "WH-SH", billing)
    carrier_says(engine, tracking_no, TrackingStatus.REFUSED, billing)
    carrier_says(engine, tracking_no, TrackingStatus.RETURNED, billing)  # the trip back ends: no second credit note
    invoice, note = invoices(engine, no)
    assert (note.kind, note.corrects, note.total, note.tax, note.net) == (
        "credit_note", invoice.invoice_no, -invoice.total, -invoice.tax, -invoice.net,
    )  # fmt: skip
    assert note.seq == invoice.seq + 1 and "refused" in note.reason
    with Session(engine) as session:
        lines = session.exec(select(InvoiceLine).where(InvoiceLine.invoice_no == note.invoice_no)).all()
        assert sorted((line.sku, line.qty, line.gross) for line in lines) == [
            ("SKU-1001", -3, D("-99.99")), ("SKU-1006", -1, D("-129.00")),
        ]  # fmt: skip
        assert balances(session, ["C-1003"])["C-1003"] == before  # owed, then credited: back where it was
        assert open_invoices(session, no) == []
        assert not session.exec(
            select(LedgerEntry).where(LedgerEntry.order_no == no, LedgerEntry.kind == "payment")
        ).all()
    assert settlement_of(engine, no) == "credited"


def test_a_customer_invoiced_on_delivery_is_invoiced_when_the_parcel_is_signed_for(engine: Engine) -> None:
    billing = policy()
    with unit_of_work(engine) as session:
        customer = session.get(Customer, "C-1002")
        assert customer is not None
        customer.invoice_policy = "delivery/parcel"
        session.add(customer)
    try:
        no = placed(engine, {"WH-SH": [("SKU-1001", 1, "80.00")]}, customer="C-1002")
        tracking_no = dispatch(engine, no, "WH-SH", billing)
        assert invoices(engine, no) == []
        carrier_says(engine, tracking_no, TrackingStatus.IN_TRANSIT, billing)
        assert invoices(engine, no) == []
        carrier_says(engine, tracking_no, TrackingStatus.DELIVERED, billing)
        [invoice] = invoices(engine, no)
        assert (invoice.total, invoice.tracking_no) == (D("80.00"), tracking_no)
    finally:
        with unit_of_work(engine) as session:
            customer = session.get(Customer, "C-1002")
            assert customer is not None
            customer.invoice_policy = None
            session.add(customer)


def test_a_channel_invoiced_per_order_gets_one_invoice_when_the_last_parcel_leaves(engine: Engine) -> None:
    billing = policy(shopify="dispatch/order")
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "10.00")], "WH-BJ": [("SKU-1006", 1, "129.00")]}, channel="shopify")
    first = dispatch(engine, no, "WH-SH", billing)
    assert invoices(engine, no) == []  # a parcel is still to leave
    dispatch(engine, no, "WH-BJ", billing)
    [invoice] = invoices(engine, no)
    assert (invoice.total, invoice.tracking_no, invoice.key) == (D("149.00"), None, f"order:{no}")
    # One parcel of the two is lost: the order invoice is credited for what that parcel carried, no more.
    carrier_says(engine, first, TrackingStatus.RETURNED, billing)
    _, note = invoices(engine, no)
    assert (note.corrects, note.total) == (invoice.invoice_no, D("-20.00"))
    with Session(engine) as session:
        [still] = open_invoices(session, no)
    assert still.open == D("129.00")


def test_an_order_invoiced_at_approval_is_invoiced_once_in_full(engine: Engine) -> None:
    billing = policy("approval/order")
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "10.00"), ("SKU-1006", 1, "5.50")]})
    for _ in range(2):
        with unit_of_work(engine) as session:
            order = session.get(SalesOrder, no)
            assert order is not None
            on_approved(session, order, billing, NOW)
    [invoice] = invoices(engine, no)
    assert invoice.total == D("25.50")
    dispatch(engine, no, "WH-SH", billing)
    assert len(invoices(engine, no)) == 1  # dispatch bills nothing more
    with unit_of_work(engine) as session:  # another point's order is not invoiced at approval
        order = session.get(SalesOrder, placed(engine, {"WH-SH": [("SKU-1001", 1, "10.00")]}))
        assert order is not None and on_approved(session, order, policy(), NOW) is None


def test_a_credit_note_takes_back_some_units_and_never_more_than_was_billed(engine: Engine) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 3, "10.01")]})
    dispatch(engine, no, "WH-SH", billing)
    [invoice] = invoices(engine, no)
    with unit_of_work(engine) as session:
        note = issue_credit_note(
            session, key=f"damaged:{no}", invoice_no=invoice.invoice_no, reason="one damaged", now=NOW, lines={0: 1}
        )
    assert note is not None and (note.total, note.tax) == (D("-10.01"), D("-1.15"))
    for lines, reason, why in (({0: 3}, "x", "2 units left"), ({1: 1}, "x", "no line 1"), (None, " ", "say why")):
        with pytest.raises(CommandError, match=why), unit_of_work(engine) as session:
            issue_credit_note(
                session, key=f"more:{no}", invoice_no=invoice.invoice_no, reason=reason, now=NOW, lines=lines
            )
    with unit_of_work(engine) as session:  # the rest: two units, so the invoice is credited in full
        rest = issue_credit_note(session, key=f"rest:{no}", invoice_no=invoice.invoice_no, reason="returned", now=NOW)
    assert rest is not None and rest.total == D("-20.02")
    with pytest.raises(CommandError, match="in full already"), unit_of_work(engine) as session:
        issue_credit_note(session, key=f"again:{no}", invoice_no=invoice.invoice_no, reason="again", now=NOW)
    assert sum((i.total for i in invoices(engine, no)), D("0")) == D("0.00")


def test_a_written_off_invoice_leaves_nothing_open_and_says_so(engine: Engine) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 1, "70.00")]})
    dispatch(engine, no, "WH-SH", billing)
    [invoice] = invoices(engine, no)
    with unit_of_work(engine) as session:
        assert write_off(session, invoice.invoice_no, reason="customer insolvent", by="fiona", now=NOW) == D("70.00")
    with pytest.raises(CommandError, match="nothing open"), unit_of_work(engine) as session:
        write_off(session, invoice.invoice_no, reason="again", by="fiona", now=NOW)
    with Session(engine) as session:
        assert open_invoices(session, no) == []
    assert settlement_of(engine, no) == "written off"


def test_an_order_invoiced_on_delivery_bills_what_arrived_once_every_parcel_has_ended(engine: Engine) -> None:
    billing = policy(shopify="delivery/order")
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "10.00")], "WH-BJ": [("SKU-1006", 1, "129.00")]}, channel="shopify")
    near = dispatch(engine, no, "WH-SH", billing)
    far = dispatch(engine, no, "WH-BJ", billing)
    carrier_says(engine, near, TrackingStatus.DELIVERED, billing)
    assert invoices(engine, no) == []  # the other parcel is still on its way
    carrier_says(engine, far, TrackingStatus.REFUSED, billing)
    [invoice] = invoices(engine, no)  # what arrived, and only that: nothing to credit
    assert (invoice.total, invoice.key, invoice.tracking_no) == (D("20.00"), f"order:{no}", None)
    carrier_says(engine, far, TrackingStatus.RETURNED, billing)
    assert len(invoices(engine, no)) == 1


def test_a_cod_collection_remitted_before_delivery_is_not_booked_again_when_the_parcel_is_signed_for(
    engine: Engine,
) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "50.00")]}, method="cod")
    tracking_no = dispatch(engine, no, "WH-SH", billing)
    with unit_of_work(engine) as session:  # the carrier's remittance file, while the parcel is still on its way
        order = session.get(SalesOrder, no)
        shipment = session.exec(select(Shipment).where(Shipment.tracking_no == tracking_no)).one()
        assert order is not None and collect_cod(session, order, shipment, D("100.00"), by="cod file", now=NOW) == D(
            "100.00"
        )
    carrier_says(engine, tracking_no, TrackingStatus.DELIVERED, billing)
    with Session(engine) as session:
        paid = session.exec(
            select(col(LedgerEntry.amount)).where(LedgerEntry.order_no == no, LedgerEntry.kind == "payment")
        ).all()
    assert sum(paid, D("0")) == D("-100.00")  # once


def test_a_credit_note_after_a_write_off_reverses_the_write_off_instead_of_owing_the_customer(engine: Engine) -> None:
    billing = policy()
    no = placed(engine, {"WH-SH": [("SKU-1001", 1, "100.00")]})
    tracking_no = dispatch(engine, no, "WH-SH", billing)
    [invoice] = invoices(engine, no)
    with Session(engine) as session:
        before = balances(session, ["C-1003"])["C-1003"]
    with unit_of_work(engine) as session:
        write_off(session, invoice.invoice_no, reason="gone quiet", by="fiona", now=NOW)
    carrier_says(engine, tracking_no, TrackingStatus.EXPIRED, billing)  # … and the parcel never arrived: credited
    with Session(engine) as session:
        after = balances(session, ["C-1003"])["C-1003"]
        kinds = session.exec(
            select(LedgerEntry.kind, col(LedgerEntry.amount))
            .where(LedgerEntry.order_no == no)
            .order_by(col(LedgerEntry.id))
        ).all()
    assert after == before - D("100.00")  # the invoice, gone: not 100.00 of credit on top
    assert [(k, a) for k, a in kinds] == [
        ("invoice", D("100.00")), ("write_off", D("-100.00")),
        ("credit_note", D("-100.00")), ("write_off", D("100.00")),
    ]  # fmt: skip


def test_an_order_billed_at_approval_and_then_cancelled_owes_nothing(engine: Engine) -> None:
    billing = policy("approval/order")
    no = placed(engine, {"WH-SH": [("SKU-1001", 3, "10.00")]})
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None and on_approved(session, order, billing, NOW) is not None
        order.status = "CANCELLED"
        session.add(order)
        on_stopped(session, order, billing, NOW)
        on_stopped(session, order, billing, NOW)  # a retried step: credited once
    invoice, note = invoices(engine, no)
    assert (note.corrects, note.total) == (invoice.invoice_no, D("-30.00"))
    with Session(engine) as session:
        assert open_invoices(session, no) == []
    assert settlement_of(engine, no) == "credited"


def test_an_order_is_billed_by_the_policy_it_was_registered_under(engine: Engine) -> None:
    """The business switched from approval/order to dispatch/parcel while the order was in flight: it is still
    billed once, at approval, as it was registered — never once as an order and again per parcel."""
    no = placed(engine, {"WH-SH": [("SKU-1001", 2, "10.00")]})
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        order.invoice_policy = "approval/order"
        session.add(order)
        assert on_approved(session, order, policy("dispatch/parcel"), NOW) is not None
    dispatch(engine, no, "WH-SH", policy("dispatch/parcel"))
    [invoice] = invoices(engine, no)
    assert invoice.key == f"order:{no}"
    with unit_of_work(engine) as session:
        customer = session.get(Customer, "C-1003")
        assert customer is not None
        customer.invoice_policy = "whenever"  # free text that does not read: passed over, the order still billed
        session.add(customer)
    try:
        later = placed(engine, {"WH-SH": [("SKU-1001", 1, "10.00")]})
        dispatch(engine, later, "WH-SH", policy())
        assert len(invoices(engine, later)) == 1
    finally:
        with unit_of_work(engine) as session:
            customer = session.get(Customer, "C-1003")
            assert customer is not None
            customer.invoice_policy = None
            session.add(customer)
