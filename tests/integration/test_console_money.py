"""Finance's books in the console over HTTP on both databases: the invoices list with open amounts and ageing, an
invoice's page and PDF (who may see them), the bank statement import and the "to match" queue, the reconciliation
and its CSV."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session, select

from core.config import Settings
from core.db import unit_of_work
from entrypoints.api.app import create_app
from models.status import Role
from models.tables import BankLine, Invoice, SalesOrder
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from services.billing.payments import open_invoices, record_payment
from tests.integration.test_console_access import csrf_of, make_user, sign_in
from tests.support.read_model import add_order

D = Decimal
POLICY = InvoicePolicy("OF", {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")})


@pytest.fixture
async def web(engine: Engine, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web") as http:
        yield http


def invoiced(engine: Engine, *, rep: str, qty: int, days_ago: int) -> Invoice:
    """A credit order of C-1003's (10.00 a unit) invoiced `days_ago` days ago (due 30 days after)."""
    no = f"MONEY-{uuid.uuid4().hex[:6].upper()}"
    add_order(engine, no, rep=rep, sku="SKU-1001", customer="C-1003", qty=qty)
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        issued = datetime.now(UTC) - timedelta(days=days_ago)
        invoice = issue_invoice(session, key=f"t:{no}", order=order, billed=[Billed(1, qty)], policy=POLICY, now=issued)
        assert invoice is not None
        session.expunge(invoice)
    return invoice


async def test_finance_lists_open_invoices_with_their_ageing_and_only_they_see_the_books(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    fresh = invoiced(engine, rep="alice", qty=2, days_ago=1)  # due in 29 days
    late = invoiced(engine, rep="alice", qty=3, days_ago=75)  # 45 days overdue
    make_user(engine, "fay", Role.FINANCE)
    make_user(engine, "sue", Role.SALES)
    await sign_in(web, "sue")
    for path in ("/console/finance/invoices", "/console/finance/bank", "/console/finance/reconciliation"):
        assert (await web.get(path)).status_code == 404, path
    home = await web.get("/console")
    await web.post("/console/sign-out", data={"csrf": csrf_of(home)})
    await sign_in(web, "fay")
    listed = await web.get("/console/finance/invoices")
    assert listed.status_code == 200
    text = listed.text
    assert f'id="inv-{fresh.invoice_no}"' in text and f'id="inv-{late.invoice_no}"' in text
    assert text.index(late.invoice_no) < text.index(fresh.invoice_no)  # oldest due first
    assert "31–60 days overdue" in text and "not yet due" in text
    assert 'id="ageing-C-1003"' in text and ">30.00<" in text.split('id="ageing-C-1003"')[1].split("</tr>")[0]
    overdue = await web.get("/console/finance/invoices", params={"state": "overdue", "customer": "C-1003"})
    assert late.invoice_no in overdue.text and fresh.invoice_no not in overdue.text
    with unit_of_work(engine) as session:  # paid in full: no longer open
        record_payment(
            session, late.order_no, reference=f"BANK-{late.invoice_no}", amount=None, by="fay", at=fresh.issued_at
        )
    after = await web.get("/console/finance/invoices")
    assert late.invoice_no not in after.text
    everything = await web.get("/console/finance/invoices", params={"state": "all"})
    assert late.invoice_no in everything.text


async def test_an_invoice_page_and_its_pdf_are_for_those_who_may_see_the_order(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    mine = invoiced(engine, rep="sue2", qty=4, days_ago=0)
    theirs = invoiced(engine, rep="alice", qty=1, days_ago=0)
    make_user(engine, "sue2", Role.SALES)
    await sign_in(web, "sue2")
    shown = await web.get(f"/console/invoices/{mine.invoice_no}")
    assert shown.status_code == 200
    assert mine.invoice_no in shown.text and 'id="invoice-total">40.00<' in shown.text and "SKU-1001" in shown.text
    pdf = await web.get(f"/console/invoices/{mine.invoice_no}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert f'filename="{mine.invoice_no}.pdf"' in pdf.headers["content-disposition"]
    words = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert mine.invoice_no in words and "40.00" in words
    for path in (f"/console/invoices/{theirs.invoice_no}", f"/console/invoices/{theirs.invoice_no}/pdf",
                 "/console/invoices/OF-1999-000001"):  # fmt: skip
        assert (await web.get(path)).status_code == 404, path


def statement(*rows: str) -> bytes:
    return ("\n".join(["date,amount,payer,reference", *rows]) + "\n").encode()


async def test_finance_imports_a_statement_and_matches_what_is_left_by_hand(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    first = invoiced(engine, rep="alice", qty=2, days_ago=3)  # 20.00
    second = invoiced(engine, rep="alice", qty=5, days_ago=3)  # 50.00
    make_user(engine, "fay", Role.FINANCE)
    await sign_in(web, "fay")
    page = await web.get("/console/finance/bank")
    token = csrf_of(page)
    body = statement(f"2026-12-01,20.00,Someone,{first.invoice_no}", "2026-12-01,50.00,Nobody Known,see mail")
    done = await web.post(
        "/console/finance/bank/import", data={"csrf": token}, files={"statement": ("dec.csv", body, "text/csv")}
    )
    assert done.status_code == 303
    shown = await web.get(done.headers["location"])
    assert "2 lines read: 1 matched and booked, 1 to match, 0 imported before." in shown.text
    with Session(engine) as session:
        [queued] = session.exec(select(BankLine).where(BankLine.state == "to_match", BankLine.file == "dec.csv")).all()
        assert open_invoices(session, first.order_no) == []
    again = await web.post(
        "/console/finance/bank/import", data={"csrf": token}, files={"statement": ("dec.csv", body, "text/csv")}
    )
    assert "0 matched and booked, 0 to match, 2 imported before." in (await web.get(again.headers["location"])).text
    bad = await web.post(
        "/console/finance/bank/import", data={"csrf": token},
        files={"statement": ("bad.csv", statement("yesterday,1.00,A,x"), "text/csv")},
    )  # fmt: skip
    assert bad.status_code == 422 and "line 2" in bad.text and 'id="statement-error"' in bad.text
    wrong = await web.post(f"/console/finance/bank/{queued.id}/match", data={"csrf": token, "order_no": "NO-SUCH"})
    assert wrong.status_code == 409 and f'id="match-{queued.id}-error"' in wrong.text
    matched = await web.post(
        f"/console/finance/bank/{queued.id}/match", data={"csrf": token, "order_no": second.order_no}
    )
    assert matched.status_code == 303
    after = await web.get(matched.headers["location"])
    assert f"50.00 booked against order {second.order_no}." in after.text and f'id="line-{queued.id}"' not in after.text
    with Session(engine) as session:
        assert open_invoices(session, second.order_no) == []
    forged = await web.post(f"/console/finance/bank/{queued.id}/match", data={"csrf": "nope", "order_no": "X"})
    assert forged.status_code == 403  # a form from elsewhere books nothing


async def test_the_reconciliation_page_adds_up_and_downloads_as_csv(web: httpx.AsyncClient, engine: Engine) -> None:
    invoiced(engine, rep="alice", qty=2, days_ago=0)
    make_user(engine, "fay", Role.FINANCE)
    await sign_in(web, "fay")
    period = {"from": "2000-01-01", "to": "2100-01-01"}
    shown = await web.get("/console/finance/reconciliation", params=period)
    assert shown.status_code == 200 and "The movement adds up" in shown.text and "open receivables at end" in shown.text
    sheet = await web.get("/console/finance/reconciliation.csv", params=period)
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    lines = sheet.text.splitlines()
    assert lines[0] == "period_start,period_end,line,amount" and any(line.endswith(",adds up,yes") for line in lines)
    backwards = await web.get("/console/finance/reconciliation", params={"from": "2026-12-02", "to": "2026-12-01"})
    assert backwards.status_code == 422 and "must end after it starts" in backwards.text
    default = await web.get("/console/finance/reconciliation")  # the month so far
    assert default.status_code == 200 and "adds up" in default.text


async def test_finance_books_a_payment_on_the_invoice_page_once(web: httpx.AsyncClient, engine: Engine) -> None:
    invoice = invoiced(engine, rep="alice", qty=6, days_ago=2)  # 60.00
    make_user(engine, "fay", Role.FINANCE)
    make_user(engine, "sue3", Role.SALES)
    await sign_in(web, "fay")
    shown = await web.get(f"/console/invoices/{invoice.invoice_no}")
    assert 'id="pay-reference"' in shown.text and "CNY 60.00" in shown.text
    token = csrf_of(shown)
    path = f"/console/invoices/{invoice.invoice_no}/payment"
    bad = await web.post(path, data={"csrf": token, "reference": "CHQ-1", "amount": "ten"})
    assert bad.status_code == 409 and 'id="pay-error"' in bad.text
    part = await web.post(path, data={"csrf": token, "reference": "CHQ-1", "amount": "25.00"})
    assert part.status_code == 303
    after = await web.get(part.headers["location"])
    assert "25.00 booked against this invoice." in after.text and "CNY 35.00" in after.text
    again = await web.post(path, data={"csrf": token, "reference": "CHQ-1", "amount": "25.00"})
    assert again.status_code == 303  # the same payment again books nothing
    with Session(engine) as session:
        [still] = open_invoices(session, invoice.order_no)
    assert still.open == D("35.00")
    rest = await web.post(path, data={"csrf": token, "reference": "CHQ-2"})  # no amount: what is open
    assert rest.status_code == 303
    paid = await web.get(rest.headers["location"])
    assert 'id="pay-reference"' not in paid.text  # nothing open: no form
    home = await web.get("/console")
    await web.post("/console/sign-out", data={"csrf": csrf_of(home)})
    await sign_in(web, "sue3")
    page = await web.get("/console")
    assert (await web.post(path, data={"csrf": csrf_of(page), "reference": "X"})).status_code == 404  # not finance


async def test_a_form_larger_than_any_form_needs_is_refused_before_it_is_read(
    web: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "fay", Role.FINANCE)
    await sign_in(web, "fay")
    page = await web.get("/console/finance/bank")
    huge = b"date,amount,payer,reference\n" + b"2026-12-01,1.00,A,x\n" * 400_000  # 8 MB
    answer = await web.post(
        "/console/finance/bank/import", data={"csrf": csrf_of(page)}, files={"statement": ("big.csv", huge, "text/csv")}
    )
    assert answer.status_code == 413 and "at most 5 MB" in answer.text
    with Session(engine) as session:
        assert session.exec(select(BankLine).where(BankLine.file == "big.csv")).all() == []
    stranger = httpx.AsyncClient(transport=web._transport, base_url="http://web")  # not signed in: refused the same
    async with stranger:
        assert (await stranger.post("/console/finance/bank/import", content=huge)).status_code == 413
