"""Invoices and the receivables ledger on both databases: a dispatched parcel is invoiced with its stock, numbers
stay gap-free under concurrent issuers, and exposure is read off the ledger (services/billing)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client

from core.config import Settings
from core.db import unit_of_work
from models.status import OrderStatus
from models.tables import Customer, Invoice, InvoiceLine, LedgerEntry, SalesOrder
from services import order_commands
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from services.billing.ledger import CreditPosition, balances, book_prepayment, credit_positions
from services.billing.payments import open_invoices, record_payment
from services.errors import CommandError
from services.refunds import record_refund
from tests.support.orders import make_order
from tests.support.read_model import add_order
from tests.support.waiting import wait_for_status
from worker import running_worker

D = Decimal
POLICY = InvoicePolicy("OF", {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")})
NOW = datetime(2026, 12, 3, 10, tzinfo=UTC)


def position(engine: Engine, customer_id: str, **kwargs: str) -> CreditPosition:
    with Session(engine) as session:
        return credit_positions(session, [customer_id], **kwargs).get(customer_id, CreditPosition())


async def test_a_dispatched_order_is_invoiced_with_its_parcel_and_its_exposure_moves_to_receivables(
    client: Client, engine: Engine, settings: Settings, task_queue: str
) -> None:
    order = make_order(f"T-INV-{uuid.uuid4().hex[:6]}", [("SKU-1001", 3, "199.00"), ("SKU-1006", 1, "129.00")])
    with Session(engine) as session:
        start = position(engine, order.customer_id)
        terms = session.get(Customer, order.customer_id).payment_terms_days  # type: ignore[union-attr]
    async with running_worker(client, engine, settings, task_queue):
        handle = await order_commands.start(client, order, task_queue)
        await wait_for_status(handle, OrderStatus.PICKING)
        picking = position(engine, order.customer_id)
        assert picking.to_bill == start.to_bill + D("726.00") and picking.receivables == start.receivables
        tracking_no = f"SIMINV{uuid.uuid4().hex[:10].upper()}"
        await order_commands.dispatch(client, order.order_no, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no)
        await wait_for_status(handle, OrderStatus.DISPATCHED, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED)
    with Session(engine) as session:
        [invoice] = session.exec(select(Invoice).where(Invoice.order_no == order.order_no)).all()
        lines = session.exec(
            select(InvoiceLine).where(InvoiceLine.invoice_no == invoice.invoice_no).order_by(col(InvoiceLine.position))
        ).all()
        [entry] = session.exec(select(LedgerEntry).where(LedgerEntry.invoice_no == invoice.invoice_no)).all()
    assert invoice.invoice_no.startswith(f"OF-{invoice.issued_at.year}-") and invoice.tracking_no == tracking_no
    assert [(line.sku, line.qty, line.gross, line.tax) for line in lines] == [
        ("SKU-1001", 3, D("597.00"), D("68.68")),  # 597 × 0.13 / 1.13 = 68.681…
        ("SKU-1006", 1, D("129.00"), D("14.84")),  # 129 × 0.13 / 1.13 = 14.840…
    ]
    assert (invoice.total, invoice.tax, invoice.net) == (D("726.00"), D("83.52"), D("642.48"))
    assert (invoice.due_at - invoice.issued_at).days == terms
    assert (entry.kind, entry.amount, entry.customer_id) == ("invoice", D("726.00"), order.customer_id)
    # Invoicing moves the order's amount from "to bill" to receivables: the exposure is what it was.
    after = position(engine, order.customer_id)
    assert after.receivables == start.receivables + D("726.00") and after.to_bill == start.to_bill
    assert after.exposure == picking.exposure


def test_issuing_the_same_parcel_again_issues_nothing(engine: Engine) -> None:
    no = f"INV-AGAIN-{uuid.uuid4().hex[:6]}"
    add_order(engine, no, rep="alice", sku="SKU-1001")
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        first = issue_invoice(
            session, key=f"parcel:{no}:sim:1", order=order, billed=[Billed(1, 1)], policy=POLICY, now=NOW
        )
        again = issue_invoice(
            session, key=f"parcel:{no}:sim:1", order=order, billed=[Billed(1, 1)], policy=POLICY, now=NOW
        )
    assert first is not None and again is None
    with Session(engine) as session:
        assert len(session.exec(select(Invoice).where(Invoice.order_no == no)).all()) == 1
        assert len(session.exec(select(LedgerEntry).where(LedgerEntry.order_no == no)).all()) == 1


def test_invoice_numbers_stay_gap_free_under_concurrent_issuers(engine: Engine) -> None:
    """16 issuers at once, 200 invoices, each in its own transaction; one more issue rolled back midway. The
    numbers are 1..200 with none twice and none skipped (the rolled-back one gave its number back)."""
    no = f"INV-CONC-{uuid.uuid4().hex[:6]}"
    add_order(engine, no, rep="alice", sku="SKU-1001")
    entity = f"T{uuid.uuid4().hex[:6].upper()}"
    policy = InvoicePolicy(entity, POLICY.tax_rates)
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def issuer(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(worker, 200, 16):
                with unit_of_work(engine) as session:
                    order = session.get(SalesOrder, no)
                    assert order is not None
                    issue_invoice(session, key=f"k:{entity}:{i}", order=order, billed=[Billed(1, 1)], policy=policy,
                                  now=NOW)  # fmt: skip
            if worker == 0:
                with pytest.raises(RuntimeError), unit_of_work(engine) as session:
                    order = session.get(SalesOrder, no)
                    assert order is not None
                    issue_invoice(session, key=f"k:{entity}:lost", order=order, billed=[Billed(1, 1)], policy=policy,
                                  now=NOW)  # fmt: skip
                    raise RuntimeError("the issuing transaction fails after taking its number")
        except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    with Session(engine) as session:
        seqs = sorted(session.exec(select(Invoice.seq).where(Invoice.entity == entity)).all())
        assert seqs == list(range(1, 201))
        numbers = session.exec(select(Invoice.invoice_no).where(Invoice.entity == entity)).all()
        assert len(set(numbers)) == 200 and f"{entity}-2026-000200" in numbers


def test_a_prepaid_order_paid_cancelled_and_refunded_leaves_the_customer_owing_nothing(engine: Engine) -> None:
    no = f"INV-REFUND-{uuid.uuid4().hex[:6]}"
    add_order(engine, no, rep="alice", sku="SKU-1001", customer="C-1003")  # C-1003 owes nothing to start with
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        order.payment_method, order.paid, order.status = "prepaid", True, OrderStatus.CANCELLED.value
        session.add(order)
        assert book_prepayment(session, no, "C-1003", order.total, "CNY", at=NOW, reference="BANK-1", by="fiona")
        assert not book_prepayment(session, no, "C-1003", order.total, "CNY", at=NOW, reference="BANK-1", by="fiona")
    with Session(engine) as session:
        assert balances(session, ["C-1003"]) == {"C-1003": D("-10.00")}  # their money, held by us
    with unit_of_work(engine) as session:
        record_refund(session, no, reference="REFUND-1", by="fiona", at=NOW)
    with pytest.raises(CommandError, match="already recorded"), unit_of_work(engine) as session:
        record_refund(session, no, reference="REFUND-2", by="fiona", at=NOW)
    with Session(engine) as session:
        assert balances(session, ["C-1003"]) == {"C-1003": D("0.00")}
    assert position(engine, "C-1003").exposure == D("0.00")


def test_exposure_counts_what_credit_orders_will_bill_and_leaves_out_the_order_being_checked(engine: Engine) -> None:
    """C-1002 opened with 45,000.00 owed (the seed's opening entry); two open credit orders of 10.00 each."""
    first, second = (f"INV-EXP-{i}-{uuid.uuid4().hex[:6]}" for i in range(2))
    for no in (first, second):
        add_order(engine, no, rep="bob", sku="SKU-1001", customer="C-1002")
    whole = position(engine, "C-1002")
    assert whole.receivables == D("45000.00") and whole.to_bill >= D("20.00")
    without = position(engine, "C-1002", excluding_order=first)
    assert whole.to_bill - without.to_bill == D("10.00") and without.receivables == whole.receivables


def test_a_payment_settles_the_oldest_invoice_first_and_keeps_what_is_left_over(engine: Engine) -> None:
    no = f"INV-PAY-{uuid.uuid4().hex[:6]}"
    add_order(engine, no, rep="alice", sku="SKU-1001", customer="C-1003")
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        first = issue_invoice(session, key=f"{no}:1", order=order, billed=[Billed(1, 3)], policy=POLICY, now=NOW)
        later = NOW.replace(day=4)
        second = issue_invoice(session, key=f"{no}:2", order=order, billed=[Billed(1, 2)], policy=POLICY, now=later)
    assert first is not None and second is not None  # 30.00, then 20.00
    with unit_of_work(engine) as session:
        paid = record_payment(session, no, reference="B-1", amount=D("35.00"), by="fiona", at=NOW)
    assert paid.applied == [(first.invoice_no, D("30.00")), (second.invoice_no, D("5.00"))] and paid.unapplied == 0
    with Session(engine) as session:
        assert [(i.invoice_no, i.open) for i in open_invoices(session, no)] == [(second.invoice_no, D("15.00"))]
    with unit_of_work(engine) as session:
        over = record_payment(session, no, reference="B-2", amount=D("40.00"), by="fiona", at=NOW)
    assert over.applied == [(second.invoice_no, D("15.00"))] and over.unapplied == D("25.00")
    with Session(engine) as session:
        assert open_invoices(session, no) == []
        assert balances(session, ["C-1003"]) == {"C-1003": D("-25.00")}  # 50 invoiced − 75 paid: theirs, held
    for reference, amount, why in [("", None, "reference"), ("B-3", D("1.00"), "no open invoice"),
                                   ("B-1", D("1.00"), "already booked")]:  # fmt: skip
        with pytest.raises(CommandError, match=why), unit_of_work(engine) as session:
            record_payment(session, no, reference=reference, amount=amount, by="fiona", at=NOW)
    with pytest.raises(CommandError, match="unknown order"), unit_of_work(engine) as session:
        record_payment(session, "NOT-THERE", reference="B-9", amount=None, by="fiona", at=NOW)
