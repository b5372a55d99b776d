"""Invoices and bank statements at volume (issue 13; `make bench`).

1. **issue**: N orders (written straight into the read model), 16 threads issuing their invoices, one transaction
   per invoice as record_dispatch does → invoices/s, and the numbers checked gap-free (1..N, each once). The
   reference, in the same run: the same 16 threads writing one keyed ledger row per transaction — the floor of any
   per-invoice transaction on this database.
2. **bank import**: M open invoices, then one statement of M lines (70 % naming an invoice, 20 % an order, 5 % only
   the payer with an amount only one of their invoices leaves open, 5 % matching nothing) imported in one
   transaction → seconds for the file, lines matched. The reference: the same M payments booked with one bulk
   INSERT (the floor of writing them at all).

3. **pdf**: a 20-line invoice rendered as its PDF (services/billing/invoice_document.py: header, parties, the lines
   table, tax summary, footer) → ms per PDF and its size; the reference, in the same run: fpdf2 with the same font
   writing the same 20 lines as plain text cells (the floor of any PDF with this font: loading and subsetting it).

Both on SQLite and on PostgreSQL (a throwaway cluster from the machine's binaries, tests.support.postgres).
Goals: ≥ 100 invoices/s on Postgres with 16 issuers and no gap; a 10,000-line file imported and matched in < 30 s;
a PDF in < 1 s.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF
from sqlalchemy import Engine, insert, text
from sqlmodel import Session, select

from bench.pipeline import machine_facts, run_bench
from core.db import make_engine, unit_of_work
from core.migrate import upgrade
from dev.seed import seed
from models.status import OrderStatus
from models.tables import Invoice, LedgerEntry, SalesOrder
from services.billing.bank import import_statement
from services.billing.invoice_document import (
    DocumentLine,
    InvoiceDocument,
    Party,
    find_font,
    render_pdf,
    tax_summary,
)
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from tests.support.orders import make_order
from tests.support.postgres import TEMPLATE_DB, create_template, start_cluster

ISSUERS = 16
CUSTOMERS = ["C-1001", "C-1002", "C-1003", "C-1004"]
NOW = datetime(2026, 12, 3, 9, tzinfo=UTC)
POLICY_RATES = {"standard": Decimal("0.13"), "reduced": Decimal("0.09"), "zero": Decimal("0")}


def add_orders(engine: Engine, prefix: str, count: int) -> list[str]:
    """`count` dispatched credit orders straight into the read model (one line: SKU-1001 × qty at 10.00)."""
    numbers = [f"{prefix}-{i:06d}" for i in range(count)]
    rows: list[dict[str, Any]] = []
    for i, no in enumerate(numbers):
        qty = 1 + i % 97  # totals from 10.00 to 970.00: many amounts, some repeated
        order = make_order(no, [("SKU-1001", qty, "10.00")], customer_id=CUSTOMERS[i % len(CUSTOMERS)])
        rows.append(
            {
                "order_no": no, "workflow_id": f"order-{no}", "customer_id": order.customer_id,
                "channel": order.channel, "sales_rep": "alice", "order_type": order.order_type.value,
                "payment_method": order.payment.method.value, "currency": order.currency, "total": order.total,
                "status": OrderStatus.DISPATCHED.value, "paid": False, "payload": order.model_dump(mode="json"),
                "content_hash": order.content_hash(), "created_at": NOW, "updated_at": NOW, "tags": [],
            }
        )  # fmt: skip
    with unit_of_work(engine) as session:
        for start in range(0, len(rows), 1000):
            session.execute(insert(SalesOrder), rows[start : start + 1000])
    return numbers


def issue_phase(engine: Engine, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    prefix = f"ISS{uuid.uuid4().hex[:4].upper()}"
    numbers = add_orders(engine, prefix, count)
    entity = f"B{uuid.uuid4().hex[:5].upper()}"
    policy = InvoicePolicy(entity, POLICY_RATES)
    errors: list[BaseException] = []

    def run(work: Callable[[int], None]) -> float:
        barrier = threading.Barrier(ISSUERS + 1)

        def issuer(worker: int) -> None:
            barrier.wait()
            try:
                for i in range(worker, count, ISSUERS):
                    work(i)
            except BaseException as exc:  # noqa: BLE001 - reported after the run
                errors.append(exc)

        threads = [threading.Thread(target=issuer, args=(w,)) for w in range(ISSUERS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    def issue(i: int) -> None:
        with unit_of_work(engine) as session:
            order = session.get(SalesOrder, numbers[i])
            assert order is not None
            billed = [Billed(1, order.payload["lines"][0]["qty"])]
            issue_invoice(session, key=f"bench:{numbers[i]}", order=order, billed=billed, policy=policy, now=NOW)

    def floor(i: int) -> None:
        with unit_of_work(engine) as session:
            session.add(LedgerEntry(key=f"floor:{prefix}:{i}", customer_id="C-1001", kind="opening",
                                    amount=Decimal("0.00"), currency="CNY", at=NOW))  # fmt: skip

    log(f"  issue: {count} invoices, {ISSUERS} issuers ...")
    ours = run(issue)
    reference = run(floor)
    if errors:
        raise RuntimeError(f"{len(errors)} issuers failed: {errors[0]!r}")
    with Session(engine) as session:
        seqs = sorted(session.exec(select(Invoice.seq).where(Invoice.entity == entity)).all())
        session.execute(text("DELETE FROM ledger_entries WHERE key LIKE :p"), {"p": f"floor:{prefix}:%"})
        session.commit()
    gap_free = seqs == list(range(1, count + 1))
    return {
        "invoices": count,
        "issuers": ISSUERS,
        "seconds": round(ours, 2),
        "invoices_per_s": round(count / ours, 1),
        "reference_rows_per_s": round(count / reference, 1),
        "ratio_to_reference": round(reference / ours, 3),
        "gap_free": gap_free,
    }


def statement_for(engine: Engine, numbers: Sequence[str], rng: random.Random) -> str:
    """One line per invoice of `numbers`: most name the invoice, some the order, a few only the payer."""
    with Session(engine) as session:
        invoices = session.exec(select(Invoice).where(Invoice.order_no.in_(list(numbers)))).all()  # type: ignore[attr-defined]
        names = dict(session.execute(text("SELECT customer_id, name FROM customers")).all())
    by_amount: dict[tuple[str, Decimal], int] = {}
    for invoice in invoices:
        key = (invoice.customer_id, invoice.total)
        by_amount[key] = by_amount.get(key, 0) + 1
    lines = ["date,amount,payer,reference"]
    for invoice in invoices:
        draw = rng.random()
        payer = names.get(invoice.customer_id, "")
        if draw < 0.70:
            lines.append(f"2026-12-02,{invoice.total},{payer},INV {invoice.invoice_no}")
        elif draw < 0.90:
            lines.append(f"2026-12-02,{invoice.total},{payer},payment {invoice.order_no}")
        elif draw < 0.95 and by_amount[(invoice.customer_id, invoice.total)] == 1:
            lines.append(f"2026-12-02,{invoice.total},{payer},transfer")
        else:
            lines.append(f"2026-12-02,{invoice.total + Decimal('0.01')},Somebody,unknown {uuid.uuid4().hex[:8]}")
    return "\n".join(lines) + "\n"


def import_phase(engine: Engine, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    prefix = f"IMP{uuid.uuid4().hex[:4].upper()}"
    numbers = add_orders(engine, prefix, count)
    policy = InvoicePolicy(f"I{uuid.uuid4().hex[:5].upper()}", POLICY_RATES)
    with unit_of_work(engine) as session:
        for no in numbers:
            order = session.get(SalesOrder, no)
            assert order is not None
            billed = [Billed(1, order.payload["lines"][0]["qty"])]
            issue_invoice(session, key=f"bench:{no}", order=order, billed=billed, policy=policy, now=NOW)
    text_ = statement_for(engine, numbers, random.Random(13))
    log(f"  bank import: {count} lines ...")
    started = time.perf_counter()
    with unit_of_work(engine) as session:
        done = import_statement(session, text_, file="bench.csv", by="bench", now=NOW)
    ours = time.perf_counter() - started
    rows = [
        {"key": f"floor:{prefix}:{i}", "customer_id": "C-1001", "kind": "payment", "amount": Decimal("-1.00"),
         "currency": "CNY", "reference": "x", "at": NOW, "by": "bench"}
        for i in range(count)
    ]  # fmt: skip
    started = time.perf_counter()
    with unit_of_work(engine) as session:
        session.execute(insert(LedgerEntry), rows)
    reference = time.perf_counter() - started
    return {
        "lines": count,
        "seconds": round(ours, 2),
        "matched": done.matched,
        "to_match": done.to_match,
        "reference_bulk_insert_s": round(reference, 3),
        "ratio_to_reference": round(ours / max(reference, 1e-6), 1),
    }


async def bench(args: argparse.Namespace, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    result: dict[str, Any] = {"date": datetime.now(UTC).date().isoformat(), "machine": machine_facts()}
    engines: dict[str, Callable[[], Engine]] = {}
    sqlite_path = tmp / "billing.db"

    def sqlite_engine() -> Engine:
        engine = make_engine(f"sqlite:///{sqlite_path}", pool_size=ISSUERS + 4)
        upgrade(engine)
        seed(engine, console_passwords=False)
        return engine

    engines["sqlite"] = sqlite_engine
    cluster = None
    if "postgres" in args.backends:
        try:
            cluster = start_cluster()
        except pytest.fail.Exception as exc:
            raise RuntimeError(str(exc)) from None
        create_template(cluster)
        engines["postgres"] = lambda: make_engine(cluster.url(TEMPLATE_DB), pool_size=ISSUERS + 4)
    result["pdf"] = pdf_phase(args.pdfs, log)
    try:
        for name in args.backends:
            log(f"{name}:")
            engine = engines[name]()
            try:
                result[name] = {
                    "issue": issue_phase(engine, args.invoices, log),
                    "bank_import": import_phase(engine, args.lines, log),
                }
            finally:
                engine.dispose()
    finally:
        if cluster is not None:
            cluster.stop()
    return result


def pdf_phase(count: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Render a 20-line invoice `count` times, and the same text as plain cells with the same font (the floor)."""
    font = find_font()
    lines = tuple(
        DocumentLine(position=n, sku=f"SKU-{1001 + n}", description=f"升降桌 standing desk {n}", qty=n + 1,
                     unit_price=Decimal("2999.00"), tax_rate_bp=1300, net=Decimal("2654.00") * (n + 1),
                     tax=Decimal("345.00") * (n + 1), gross=Decimal("2999.00") * (n + 1))
        for n in range(20)
    )  # fmt: skip
    seller = Party("OF", "Orderflow Trading Co., Ltd.", ("上海市浦东新区世纪大道 100 号",), "91310000MA1FL0000X")
    doc = InvoiceDocument(
        invoice_no="OF-2026-000001", kind="invoice", corrects=None, order_no="SO-BENCH-1", tracking_no="SIM1",
        seller=seller, buyer=Party("C-1001", "上海星辰科技"), ship_to=Party("", "张三", ("上海 浦东新区",)),
        issued_at=NOW, issued_on=NOW.date(), due_on=NOW.date(), currency="CNY", lines=lines,
        net=sum((line.net for line in lines), Decimal(0)), tax=sum((line.tax for line in lines), Decimal(0)),
        total=sum((line.gross for line in lines), Decimal(0)), tax_summary=tax_summary(lines),
    )  # fmt: skip
    render_pdf(doc, font=font)  # warm: imports, the font file in the page cache

    def reference() -> bytes:
        pdf = FPDF()
        pdf.add_font("f", "", str(font.path), collection_font_number=font.face)
        pdf.set_font("f", size=9)
        pdf.add_page()
        for line in lines:
            pdf.cell(0, 5, f"{line.sku} {line.description} {line.qty} {line.unit_price} {line.gross}", new_x="LMARGIN",
                     new_y="NEXT")  # fmt: skip
        return bytes(pdf.output())

    started = time.perf_counter()
    for _ in range(count):
        size = len(render_pdf(doc, font=font))
    ours = (time.perf_counter() - started) / count
    started = time.perf_counter()
    for _ in range(count):
        reference()
    floor = (time.perf_counter() - started) / count
    log(f"  pdf: {ours * 1000:.0f} ms per 20-line invoice ({size / 1024:.1f} KiB); reference {floor * 1000:.0f} ms")
    return {
        "pdfs": count, "font": str(font.path), "ms_per_pdf": round(ours * 1000, 1), "kib": round(size / 1024, 1),
        "reference_ms": round(floor * 1000, 1), "ratio_to_reference": round(ours / floor, 2),
    }  # fmt: skip


def render(result: dict[str, Any]) -> str:
    lines = [f"billing bench {result['date']}; machine {result['machine']}"]
    for name in ("sqlite", "postgres"):
        if name not in result:
            continue
        issue, imported = result[name]["issue"], result[name]["bank_import"]
        lines.append(
            f"  {name}: {issue['invoices']} invoices by {issue['issuers']} issuers in {issue['seconds']} s ="
            f" {issue['invoices_per_s']}/s (reference: {issue['reference_rows_per_s']} keyed rows/s, ratio"
            f" {issue['ratio_to_reference']}), gap-free {issue['gap_free']}"
        )
        lines.append(
            f"  {name}: a {imported['lines']}-line statement in {imported['seconds']} s, {imported['matched']} matched,"
            f" {imported['to_match']} to match (reference: one bulk insert {imported['reference_bulk_insert_s']} s,"
            f" {imported['ratio_to_reference']}x)"
        )
    if "pdf" in result:
        pdf = result["pdf"]
        lines.append(
            f"  pdf: {pdf['ms_per_pdf']} ms per 20-line invoice, {pdf['kib']} KiB (reference: the same font and text"
            f" as plain cells {pdf['reference_ms']} ms, ratio {pdf['ratio_to_reference']})"
        )
    lines.append("  goals: ≥ 100 invoices/s on Postgres with 16 issuers, no gap; 10,000 lines in < 30 s; a PDF < 1 s")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=2000, help="invoices issued by the 16 issuers")
    parser.add_argument("--lines", type=int, default=10000, help="lines of the bank statement")
    parser.add_argument("--pdfs", type=int, default=20, help="invoice PDFs rendered (and as many references)")
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds for the whole bench")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.invoices < 1 or args.lines < 1 or args.pdfs < 1 or not set(args.backends) <= {"sqlite", "postgres"}:
        parser.error("--invoices and --lines must be >= 1; --backends of sqlite, postgres")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_bench(parse_args(argv), bench, render, name="bench.billing")


if __name__ == "__main__":
    sys.exit(main())
