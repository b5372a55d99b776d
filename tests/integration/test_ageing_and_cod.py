"""The ageing report of receivables (services/billing/ageing.py) and the carriers' COD remittance file
(services/billing/cod.py), on both databases and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func
from sqlmodel import Session, col, select

from core.db import unit_of_work
from domain.billing import AGEING_BUCKETS
from models.sqltypes import MoneyCents
from models.status import OrderStatus, TrackingStatus
from models.tables import Customer, Invoice, LedgerEntry, Reservation, ReservationState, SalesOrder, Shipment, StockLot
from models.tracking import TrackingEventIn, TrackingSnapshot
from services.billing.ageing import AgeingReport, CustomerAgeing, ageing
from services.billing.cod import RemittanceError, RemittanceProblem, import_remittance, parse_remittance
from services.billing.credit_notes import issue_credit_note, write_off
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from services.billing.ledger import balances, book
from services.billing.payments import open_invoices, record_payment
from services.billing.triggers import cod_reference, on_dispatched
from services.errors import NotFound
from services.tracking import record_snapshot
from tests.support.orders import make_order
from tests.support.read_model import add_order

D = Decimal
ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
RATES = {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")}
POLICY = InvoicePolicy("OF", RATES)
NOW = datetime(2026, 12, 4, 9, tzinfo=UTC)
AS_OF = datetime(2027, 3, 1, 0, 30, tzinfo=UTC)  # half an hour into 1 March (UTC)


def policy(timing: str = "dispatch/parcel") -> InvoicePolicy:
    return InvoicePolicy("OF", RATES, UTC, timing, {})


# --- the ageing report ---------------------------------------------------------------------------------------------


def customer(engine: Engine, *, terms: int) -> str:
    cid = f"C-AGE-{uuid.uuid4().hex[:6].upper()}"
    with unit_of_work(engine) as session:
        session.add(
            Customer(customer_id=cid, name=f"账龄 {cid}", region="华东", credit_limit=D("100000.00"),
                     payment_terms_days=terms)
        )  # fmt: skip
    return cid


def invoiced(engine: Engine, cid: str, qty: int, issued_at: datetime) -> tuple[str, str]:
    """An order of the customer's with one invoice of `qty` × 10.00, issued at `issued_at`: (order_no, invoice_no)."""
    no = f"AGE-{uuid.uuid4().hex[:8].upper()}"
    add_order(engine, no, rep="alice", sku="SKU-1001", customer=cid, qty=10)
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        issued = issue_invoice(session, key=f"{no}:p", order=order, billed=[Billed(1, qty)], policy=POLICY,
                               now=issued_at)  # fmt: skip
        assert issued is not None and issued.total == 10 * qty
        return no, issued.invoice_no


def pay(engine: Engine, no: str, amount: str) -> None:
    with unit_of_work(engine) as session:
        record_payment(session, no, reference=f"PAY-{uuid.uuid4().hex[:8]}", amount=D(amount), by="fiona", at=NOW)


@contextmanager
def selects_counted(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def amounts(row: CustomerAgeing) -> tuple[Decimal, ...]:
    return (*(row.buckets[b] for b in AGEING_BUCKETS), row.unallocated, row.balance)


def assert_adds_up(report: AgeingReport) -> None:
    for row in [*report.customers, report.totals]:
        assert row.open + row.unallocated == row.balance, row


def test_the_ageing_report_buckets_open_invoices_by_utc_days_overdue_and_adds_up_to_the_balance(
    engine: Engine,
) -> None:
    a, b = customer(engine, terms=30), customer(engine, terms=0)
    at = datetime(2027, 2, 8, 10, tzinfo=UTC)
    invoiced(engine, a, 1, at)  # due 10 March: current, 10.00
    invoiced(engine, a, 2, at.replace(month=1, day=30))  # due today, 1 March 10:00: still current, 20.00
    part_paid, _ = invoiced(engine, a, 3, datetime(2027, 1, 29, 23, 30, tzinfo=UTC))  # due 28 Feb 23:30, 1 UTC day
    pay(engine, part_paid, "12.34")  # ... 17.66 open: 1-30
    invoiced(engine, a, 4, datetime(2026, 12, 31, 10, tzinfo=UTC))  # due 30 Jan: 30 days, 1-30, 40.00
    _, part_credited = invoiced(engine, a, 5, datetime(2026, 12, 30, 10, tzinfo=UTC))  # 31 days: 31-60
    with unit_of_work(engine) as session:  # two units of five credited: 30.00 open
        note = issue_credit_note(session, key=f"cn:{part_credited}", invoice_no=part_credited, reason="2 damaged",
                                 now=NOW, lines={0: 2})  # fmt: skip
        assert note is not None and note.total == D("-20.00")
    invoiced(engine, a, 6, datetime(2026, 11, 1, 10, tzinfo=UTC))  # due 1 Dec: 90 days, 61-90, 60.00
    invoiced(engine, a, 7, datetime(2026, 10, 31, 10, tzinfo=UTC))  # due 30 Nov: 91 days, over 90, 70.00
    paid, _ = invoiced(engine, a, 8, datetime(2026, 10, 1, tzinfo=UTC))
    pay(engine, paid, "80.00")  # paid in full: not in the report
    over, _ = invoiced(engine, a, 1, datetime(2026, 10, 1, tzinfo=UTC))
    pay(engine, over, "25.00")  # 10.00 settles it, 15.00 kept unapplied: theirs, held
    _, lost = invoiced(engine, a, 9, datetime(2026, 10, 1, tzinfo=UTC))
    with unit_of_work(engine) as session:
        write_off(session, lost, reason="insolvent", by="fiona", now=NOW)  # nothing open: not in the report
    paid_then_credited, credited_after_paying = invoiced(engine, a, 1, datetime(2026, 10, 1, tzinfo=UTC))
    pay(engine, paid_then_credited, "10.00")
    with unit_of_work(engine) as session:  # credited after it was paid: settled 10.00 beyond its total
        issue_credit_note(session, key=f"cn:{credited_after_paying}", invoice_no=credited_after_paying,
                          reason="returned", now=NOW)  # fmt: skip
    invoiced(engine, b, 1, datetime(2027, 2, 20, 10, tzinfo=UTC))  # terms 0: due on issue, 9 days: 1-30
    with unit_of_work(engine) as session:  # owed before orderflow, and a refund paid out against no invoice
        book(session, key=f"opening:{b}", customer_id=b, kind="opening", amount=D("100.00"), currency="CNY", at=NOW)
        book(session, key=f"refund:{b}", customer_id=b, kind="refund", amount=D("5.00"), currency="CNY", at=NOW)

    with selects_counted(engine) as queries, Session(engine) as session:
        report = ageing(session, AS_OF, [b, a, a])
    assert len(queries) == 3  # open invoices with their settled sums, balances, names: whatever the customers
    assert [row.customer_id for row in report.customers] == sorted([a, b])
    rows = {row.customer_id: row for row in report.customers}
    assert amounts(rows[a]) == (D("30.00"), D("57.66"), D("30.00"), D("60.00"), D("70.00"), D("-25.00"), D("222.66"))
    assert rows[a].open_invoices == 7 and rows[a].name == f"账龄 {a}"
    assert amounts(rows[b]) == (D("0.00"), D("10.00"), D("0.00"), D("0.00"), D("0.00"), D("105.00"), D("115.00"))
    assert_adds_up(report)
    with Session(engine) as session:
        assert {cid: row.balance for cid, row in rows.items()} == balances(session, [a, b])
        # Unallocated is what no open invoice carries: b's entries without an invoice (opening + refund); a's
        # unapplied 15.00 plus the 10.00 its credited invoice was settled beyond its total.
        loose = session.exec(
            select(LedgerEntry.customer_id, func.sum(col(LedgerEntry.amount), type_=MoneyCents()))
            .where(col(LedgerEntry.customer_id).in_([a, b]), col(LedgerEntry.invoice_no).is_(None))
            .group_by(col(LedgerEntry.customer_id))
        ).all()
    assert dict(loose) == {a: D("-15.00"), b: D("105.00")}
    assert report.totals.balance == D("337.66") and report.totals.buckets["1-30"] == D("67.66")

    table = report.rows()
    assert table[0] == {"customer_id": min(a, b), "name": f"账龄 {min(a, b)}", **{
        bucket: str(rows[min(a, b)].buckets[bucket]) for bucket in AGEING_BUCKETS
    }, "unallocated": str(rows[min(a, b)].unallocated), "balance": str(rows[min(a, b)].balance)}  # fmt: skip
    assert table[-1]["customer_id"] == "total" and table[-1]["balance"] == "337.66"
    sheet = report.csv().splitlines()
    assert sheet[0] == "as_of,customer_id,name,current,1-30,31-60,61-90,over 90,unallocated,balance"
    assert sheet[-1] == "2027-03-01,total,,30.00,67.66,30.00,60.00,70.00,80.00,337.66"

    # Everyone: the seeded customers' opening balances are unallocated; a customer owing nothing has no row.
    with selects_counted(engine) as queries, Session(engine) as session:
        everyone = ageing(session, AS_OF)
    assert len(queries) == 3
    with Session(engine) as session:
        owed = balances(session)
    ids = [row.customer_id for row in everyone.customers]
    assert ids == sorted(ids) and a in ids and b in ids and "C-1003" not in ids  # C-1003 opened at 0.00
    seeded = {row.customer_id: row for row in everyone.customers}["C-1001"]
    assert amounts(seeded) == (D("0.00"),) * 5 + (D("12000.00"), D("12000.00"))
    assert_adds_up(everyone)
    assert everyone.totals.balance == sum(owed.values(), D("0"))

    with Session(engine) as session:  # asked for by name: a row even when they owe nothing; a stranger refused
        assert amounts(ageing(session, AS_OF, ["C-1003"]).customers[0]) == (D("0.00"),) * 7
        with pytest.raises(NotFound, match="unknown customer C-NOBODY"):
            ageing(session, AS_OF, ["C-1003", "C-NOBODY"])


# --- the COD remittance --------------------------------------------------------------------------------------------


def placed(
    engine: Engine, lines: list[tuple[str, int, str]], *, method: str = "cod", customer_id: str = "C-1003"
) -> str:
    """An order whose lines are reserved at WH-SH, as allocation leaves it."""
    no = f"COD-{uuid.uuid4().hex[:8].upper()}"
    order = make_order(no, lines, customer_id=customer_id, payment={"method": method, "paid": False})
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=no, workflow_id=f"order-{no}", customer_id=customer_id, channel="web", sales_rep="alice",
                order_type="standard", payment_method=method, currency="CNY", total=order.total,
                status=OrderStatus.PICKING.value, paid=False, payload=order.model_dump(mode="json"),
                content_hash=order.content_hash(), created_at=NOW, updated_at=NOW,
            )
        )  # fmt: skip
        lot = session.exec(select(StockLot.id).where(StockLot.warehouse == "WH-SH")).first()
        assert lot is not None
        for line_no, (sku, qty, _) in enumerate(lines, start=1):
            session.add(
                Reservation(key=f"{no}:{line_no}", order_no=no, line_no=line_no, sku=sku, warehouse="WH-SH",
                            lot_id=lot, qty=qty)
            )  # fmt: skip
    return no


def dispatch(engine: Engine, no: str, billing: InvoicePolicy) -> str:
    """What record_dispatch does for billing: consume the reservations, add the shipment, tell billing."""
    tracking_no = f"SIM{uuid.uuid4().hex[:10].upper()}"
    with unit_of_work(engine) as session:
        shipped: dict[int, int] = {}
        for r in session.exec(select(Reservation).where(Reservation.order_no == no)):
            r.state = ReservationState.CONSUMED
            shipped[r.line_no] = shipped.get(r.line_no, 0) + r.qty
            session.add(r)
        session.add(Shipment(order_no=no, warehouse="WH-SH", carrier="sim", tracking_no=tracking_no, dispatched_at=NOW))
        session.flush()
        order = session.get(SalesOrder, no)
        assert order is not None
        on_dispatched(session, order, [Billed(n, q) for n, q in sorted(shipped.items())], "sim", tracking_no, billing,
                      NOW)  # fmt: skip
    return tracking_no


def carrier_says(engine: Engine, tracking_no: str, status: TrackingStatus, billing: InvoicePolicy) -> None:
    at = NOW + timedelta(days=1)
    delivered = status == TrackingStatus.DELIVERED
    snapshot = TrackingSnapshot(
        carrier="sim", tracking_no=tracking_no, status=status,
        events=[TrackingEventIn(status=status, at=at, description=status.value)],
        signed_by="Li Lei" if delivered else None, signed_at=at if delivered else None,
    )  # fmt: skip
    record_snapshot(engine, snapshot, billing)


def remittance(*rows: str, header: str = "carrier,tracking_no,amount,collected_on") -> str:
    return "\n".join([header, *rows]) + "\n"


def collections(engine: Engine, *tracking_nos: str) -> list[tuple[str, Decimal, str | None]]:
    """The ledger's payment entries of these parcels' collections: (reference, amount, invoice_no)."""
    references = [cod_reference("sim", t) for t in tracking_nos]
    with Session(engine) as session:
        return [
            (e.reference, e.amount, e.invoice_no)
            for e in session.exec(
                select(LedgerEntry)
                .where(col(LedgerEntry.reference).in_(references), LedgerEntry.kind == "payment")
                .order_by(col(LedgerEntry.id))
            )
        ]


def ledger_size(engine: Engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(LedgerEntry)).one()


def test_a_remittance_books_each_parcels_collection_once_whoever_booked_it_first(engine: Engine) -> None:
    billing = policy()
    invoiced_no = placed(engine, [("SKU-1001", 2, "50.00")])
    on_invoice = dispatch(engine, invoiced_no, billing)  # invoiced as it left: 100.00 open
    signed = dispatch(engine, placed(engine, [("SKU-1006", 1, "129.00")]), billing)
    carrier_says(engine, signed, TrackingStatus.DELIVERED, billing)  # its collection booked at the door: 129.00
    later = policy("delivery/parcel")
    not_invoiced_no = placed(engine, [("SKU-1001", 1, "80.00")])
    not_invoiced = dispatch(engine, not_invoiced_no, later)  # invoiced when signed for: nothing open yet
    with Session(engine) as session:
        owed = balances(session, ["C-1003"])["C-1003"]
    text = remittance(
        f"sim,{on_invoice},100.00,2026-12-05",
        f"sim,{signed},129.00,2026-12-05",
        f"SIM,{not_invoiced},80.00,",  # the carrier's code in capitals, no collection date
    )
    lines = parse_remittance(text)
    assert [(line.line_no, line.carrier, line.amount) for line in lines] == [
        (2, "sim", D("100.00")), (3, "sim", D("129.00")), (4, "sim", D("80.00"))
    ]  # fmt: skip
    with unit_of_work(engine) as session:
        done = import_remittance(session, lines, by="fiona", now=NOW)
    assert (done.lines, done.booked, done.booked_amount, done.already_booked, done.problems) == (
        3, 2, D("180.00"), 1, []
    )  # fmt: skip
    assert done.paid_by == {"C-1003"}
    with Session(engine) as session:
        [invoice] = session.exec(select(Invoice.invoice_no).where(Invoice.order_no == invoiced_no)).all()
        assert open_invoices(session, invoiced_no) == []
        assert balances(session, ["C-1003"])["C-1003"] == owed - D("180.00")
    assert collections(engine, on_invoice, not_invoiced) == [
        (cod_reference("sim", on_invoice), D("-100.00"), invoice),
        (cod_reference("sim", not_invoiced), D("-80.00"), None),  # held unapplied until its invoice is issued
    ]

    size = ledger_size(engine)
    with unit_of_work(engine) as session:  # the same file again: nothing new
        again = import_remittance(session, parse_remittance(text), by="fiona", now=NOW)
    assert (again.booked, again.booked_amount, again.already_booked, again.problems) == (0, D("0.00"), 3, [])
    assert ledger_size(engine) == size

    # The unapplied parcel is signed for: invoiced, settled by the money in hand; its collection not booked again.
    carrier_says(engine, not_invoiced, TrackingStatus.DELIVERED, later)
    with Session(engine) as session:
        assert open_invoices(session, not_invoiced_no) == []
    assert len(collections(engine, not_invoiced)) == 1
    with unit_of_work(engine) as session:
        third = import_remittance(session, parse_remittance(text), by="fiona", now=NOW)
    assert (third.booked, third.already_booked, third.problems) == (0, 3, [])


def test_remittance_lines_that_cannot_be_booked_are_listed_and_the_rest_booked(engine: Engine) -> None:
    billing = policy()
    good = dispatch(engine, placed(engine, [("SKU-1001", 2, "50.00")]), billing)
    short = dispatch(engine, placed(engine, [("SKU-1006", 1, "129.00")]), billing)
    on_credit = dispatch(engine, placed(engine, [("SKU-1001", 1, "10.00")], method="credit"), billing)
    signed = dispatch(engine, placed(engine, [("SKU-1001", 1, "50.00")]), billing)
    carrier_says(engine, signed, TrackingStatus.DELIVERED, billing)  # booked 50.00 at the door
    refused = dispatch(engine, placed(engine, [("SKU-1001", 1, "30.00")]), billing)
    carrier_says(engine, refused, TrackingStatus.REFUSED, billing)
    unapplied_no = placed(engine, [("SKU-1001", 1, "60.00")])
    unapplied = dispatch(engine, unapplied_no, policy("delivery/parcel"))
    with unit_of_work(engine) as session:  # its collection held unapplied (no invoice yet) by an earlier file
        earlier = import_remittance(session, parse_remittance(remittance(f"sim,{unapplied},60.00,")), by="f", now=NOW)
    assert earlier.booked == 1
    size = ledger_size(engine)
    text = remittance(
        f"sim,{good},100.00,2026-12-05",
        "sim,NOPE123,10.00,2026-12-05",
        f"sim,{short},120.00,2026-12-05",
        f"sim,{on_credit},10.00,2026-12-05",
        f"sim,{signed},45.00,2026-12-05",
        f"sim,{refused},30.00,2026-12-05",
        f"sim,{unapplied},61.00,2026-12-05",
    )
    with unit_of_work(engine) as session:
        done = import_remittance(session, parse_remittance(text), by="fiona", now=NOW)
    assert (done.lines, done.booked, done.booked_amount, done.already_booked) == (7, 1, D("100.00"), 0)
    order_on_credit = _order_of(engine, on_credit)
    assert done.problems == [
        RemittanceProblem(3, "NOPE123", "no parcel sim NOPE123 was dispatched"),
        RemittanceProblem(4, short, "carrier remitted 120.00, the parcel's goods are 129.00"),
        RemittanceProblem(5, on_credit, f"order {order_on_credit} is not cash on delivery (credit)"),
        RemittanceProblem(6, signed, "carrier remitted 45.00, its collection was booked as 50.00 before"),
        RemittanceProblem(7, refused, "carrier remitted 30.00 for a parcel that is REFUSED: nothing collected"),
        RemittanceProblem(8, unapplied, "carrier remitted 61.00, its collection was booked as 60.00 before"),
    ]
    assert ledger_size(engine) == size + 1  # the good line's payment, nothing else
    assert collections(engine, short, on_credit, refused) == []
    assert [amount for _, amount, _ in collections(engine, signed, unapplied)] == [D("-50.00"), D("-60.00")]


def _order_of(engine: Engine, tracking_no: str) -> str:
    with Session(engine) as session:
        shipment = session.exec(select(Shipment).where(Shipment.tracking_no == tracking_no)).one()
        return shipment.order_no


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (remittance("sim,T1,10.00,", "sim,T2,ten,"), "line 3: amount 'ten' is not a number"),
        (remittance("sim,T1,-5.00,"), "line 2: amount -5.00 is not a positive amount in cents"),
        (remittance("sim,T1,5.001,"), "line 2: amount 5.001 is not a positive amount in cents"),
        (remittance("sim,T1,0,"), "line 2: amount 0 is not a positive amount in cents"),
        (remittance("sim,,5.00,"), "line 2: no tracking_no"),
        (remittance(",T1,5.00,"), "line 2: no carrier"),
        (remittance("sim,T1,5.00,05/12/2026"), "line 2: collected_on '05/12/2026' is not YYYY-MM-DD"),
        (remittance("sim,T1,5.00,2026-12-05,extra"), "line 2: more fields than the header names"),
        (remittance(f"sim,{'X' * 65},5.00,"), "line 2: tracking_no is longer than 64 characters"),
        (
            remittance("sim,T1", header="carrier,tracking_no"),
            "line 1: the header must name carrier, tracking_no, amount",
        ),
    ],
)
def test_a_remittance_with_a_bad_line_is_refused_whole_naming_the_line(text: str, why: str) -> None:
    with pytest.raises(RemittanceError) as refused:
        parse_remittance(text)
    assert why in str(refused.value)


def test_a_remittance_header_may_name_more_columns_in_any_order() -> None:
    [line] = parse_remittance("\ufeffNote,Amount,Tracking_No,Carrier\nparcel one,12.5,T-1,Kuaidi100\n")
    assert (line.line_no, line.carrier, line.tracking_no, line.amount, line.collected_on) == (
        2, "kuaidi100", "T-1", D("12.50"), None
    )  # fmt: skip


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_finance_ages_receivables_and_imports_a_cod_remittance_from_the_cli(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    cid = customer(engine, terms=30)
    invoiced(engine, cid, 4, datetime(2026, 12, 1, 10, tzinfo=UTC))  # due 31 Dec: 60 days at 1 March, 31-60
    over, _ = invoiced(engine, cid, 1, datetime(2027, 2, 1, 10, tzinfo=UTC))  # due 3 March: current
    pay(engine, over, "15.00")  # 5.00 kept unapplied
    billing = policy()
    cod_order = placed(engine, [("SKU-1001", 2, "50.00")])
    tracking_no = dispatch(engine, cod_order, billing)
    assert engine.url.database
    env = {**os.environ, "ORDERFLOW_STATE_DIR": str(Path(engine.url.database).parent), "DATABASE_URL": str(engine.url)}

    def orderflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ORDERFLOW, "--json", *args], env=env, capture_output=True, text=True, timeout=60)

    aged = orderflow("ageing", "--as-of", "2027-03-01", "--customer", cid)
    assert aged.returncode == 0, aged.stderr
    assert json.loads(aged.stdout) == [
        {"customer_id": cid, "name": f"账龄 {cid}", "current": "0.00", "1-30": "0.00", "31-60": "40.00",
         "61-90": "0.00", "over 90": "0.00", "unallocated": "-5.00", "balance": "35.00"},
        {"customer_id": "total", "name": "", "current": "0.00", "1-30": "0.00", "31-60": "40.00",
         "61-90": "0.00", "over 90": "0.00", "unallocated": "-5.00", "balance": "35.00"},
    ]  # fmt: skip
    sheet = orderflow("ageing", "--as-of", "2027-03-01", "--customer", cid, "--csv").stdout.splitlines()
    assert sheet[0].startswith("as_of,customer_id,name,current") and sheet[1].startswith(f"2027-03-01,{cid},")
    everyone = json.loads(orderflow("ageing").stdout)  # today, every customer
    assert everyone[-1]["customer_id"] == "total" and cid in [row["customer_id"] for row in everyone]
    unknown = orderflow("ageing", "--customer", "C-NOBODY")
    assert unknown.returncode == 1 and "unknown customer C-NOBODY" in unknown.stderr
    bad_day = orderflow("ageing", "--as-of", "March")
    assert bad_day.returncode != 0 and "is not YYYY-MM-DD" in bad_day.stderr

    file = tmp_path / "remittance.csv"
    file.write_text(remittance(f"sim,{tracking_no},100.00,2026-12-05", "sim,NOPE,1.00,"), encoding="utf-8")
    done = orderflow("payments", "cod-remittance", str(file), "--as", "fiona")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "file": "remittance.csv", "lines": 2, "booked": 1, "booked_amount": "100.00", "already_booked": 0,
        "problems": [{"line": 3, "tracking_no": "NOPE", "why": "no parcel sim NOPE was dispatched"}],
        "credit_holds_told": [],
    }  # fmt: skip
    again = json.loads(orderflow("payments", "cod-remittance", str(file)).stdout)
    assert (again["booked"], again["already_booked"], again["booked_amount"]) == (0, 1, "0.00")
    with Session(engine) as session:
        assert open_invoices(session, cod_order) == []
    size = ledger_size(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text(remittance(f"sim,{tracking_no},100.00,", "sim,T2,1.2.3,"), encoding="utf-8")
    refused = orderflow("payments", "cod-remittance", str(bad))
    assert refused.returncode == 1 and "line 3: amount '1.2.3' is not a number" in refused.stderr
    assert ledger_size(engine) == size
