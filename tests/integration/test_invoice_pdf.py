"""The invoice and its credit note as PDFs (services/billing/invoice_document.py), on both databases: issued as
billing issues them, read back, rendered with the system's Chinese font, and read again with pypdf — what a
customer's accounts-payable software does with them."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine

from core.config import Settings
from core.db import read_only, unit_of_work
from models.status import OrderStatus
from models.tables import Customer, Product, SalesOrder
from services.billing.credit_notes import issue_credit_note
from services.billing.invoice_document import (
    PdfFontError,
    find_font,
    invoice_pdf,
    load_document,
    render_pdf,
)
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice
from tests.support.orders import make_order
from tests.support.read_model import add_order

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = InvoicePolicy("OF", {"standard": D("0.13"), "reduced": D("0.09"), "zero": D("0")}, zone=SHANGHAI)
# 20:00 UTC on New Year's Eve is 04:00 on 1 January in Shanghai: the PDF prints the business's day.
NOW = datetime(2026, 12, 31, 20, tzinfo=UTC)
SETTINGS = Settings(
    business_time_zone="Asia/Shanghai",
    legal_entity="OF",
    legal_entity_name="Orderflow Trading Co., Ltd. 订单流贸易有限公司",
    legal_entity_address="上海市浦东新区世纪大道 100 号\n200120",
    legal_entity_tax_id="91310115MA1K000000",
)
MOUSE = "人体工学无线鼠标"


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def row_of(text: str, sku: str) -> str:
    """The table row of `sku` as the text reads (one line per row: the descriptions here do not wrap)."""
    rows = [line for line in text.splitlines() if line.startswith(sku + " ")]
    assert len(rows) == 1, f"{sku}: rows {rows} in\n{text}"
    return rows[0]


def add_lines_order(engine: Engine, number: str, lines: list[tuple[str, int, str]]) -> None:
    """tests.support.read_model.add_order, with several lines at their own prices."""
    order = make_order(number, lines)
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=number, workflow_id=f"order-{number}", customer_id=order.customer_id, channel=order.channel,
                sales_rep=order.sales_rep, order_type=order.order_type.value, payment_method=order.payment.method.value,
                currency=order.currency, total=order.total, status=OrderStatus.DISPATCHED.value, paid=False,
                payload=order.model_dump(mode="json"), content_hash=order.content_hash(),
            )
        )  # fmt: skip


def test_an_invoice_prints_its_lines_totals_tax_and_due_date_with_chinese_text(engine: Engine) -> None:
    no = f"T-PDF-{uuid.uuid4().hex[:6]}"
    add_lines_order(engine, no, [("SKU-1001", 3, "199.00"), ("SKU-1006", 1, "129.00"), ("SKU-1015", 2, "89.00")])
    with unit_of_work(engine) as session:
        mouse = session.get(Product, "SKU-1001")
        stick = session.get(Product, "SKU-1015")
        assert mouse is not None and stick is not None
        mouse.name, stick.tax_class = MOUSE, "reduced"
        session.add_all([mouse, stick])
        session.flush()
        order = session.get(SalesOrder, no)
        assert order is not None
        invoice = issue_invoice(
            session, key=f"order:{no}", order=order, billed=[Billed(1, 3), Billed(2, 1), Billed(3, 2)], policy=POLICY,
            now=NOW, tracking_no="SIMPDF0001",
        )  # fmt: skip
        assert invoice is not None
        number = invoice.invoice_no
        customer = session.get(Customer, order.customer_id)
        assert customer is not None
        due = (NOW + timedelta(days=customer.payment_terms_days)).astimezone(SHANGHAI).date().isoformat()

    with read_only(engine) as session:
        doc = load_document(session, number, SETTINGS)
        assert load_document(session, "OF-1999-999999", SETTINGS) is None
    assert doc is not None
    pdf = render_pdf(doc, font=find_font(SETTINGS.pdf_font))
    assert pdf.startswith(b"%PDF-") and render_pdf(doc, font=find_font(SETTINGS.pdf_font)) == pdf  # reproducible
    text = pdf_text(pdf)

    assert "INVOICE" in text and number in text and no in text and "SIMPDF0001" in text
    # Each line: its SKU, units, unit price, rate, net, tax and gross on its row (597 × 0.13 / 1.13 = 68.681…;
    # 178 × 0.09 / 1.09 = 14.697…).
    assert row_of(text, "SKU-1001").split()[1:] == [MOUSE, "3", "199.00", "13%", "528.32", "68.68", "597.00"]
    assert row_of(text, "SKU-1006").endswith(" 1 129.00 13% 114.16 14.84 129.00")
    assert row_of(text, "SKU-1015").endswith(" 2 89.00 9% 163.30 14.70 178.00")
    assert "CNY 805.78" in text and "CNY 98.22" in text and "CNY 904.00" in text  # net, tax, total
    assert "13% 642.48 83.52 726.00" in text and "9% 163.30 14.70 178.00" in text  # the tax summary
    assert f"Due 到期日: {due}" in text and "2027-01-01" in text and "2026-12-31" not in text
    # The seller from the settings, the buyer's name, the ship-to (tests/support/orders.py) — Chinese text all.
    assert "订单流贸易有限公司" in text and "世纪大道 100 号" in text and "91310115MA1K000000" in text
    assert "上海星辰科技" in text and customer.customer_id in text
    assert "张三" in text and "上海 浦东新区 XX 路 1 号" in text and "200120" in text
    assert "page 1/1" in text


def test_a_credit_note_says_which_invoice_it_corrects_and_prints_negative_amounts(engine: Engine) -> None:
    no = f"T-PDF-CN-{uuid.uuid4().hex[:6]}"
    add_order(engine, no, rep="alice", sku="SKU-1001", qty=2)  # 2 × 10.00
    with unit_of_work(engine) as session:
        order = session.get(SalesOrder, no)
        assert order is not None
        invoice = issue_invoice(session, key=f"order:{no}", order=order, billed=[Billed(1, 2)], policy=POLICY, now=NOW)
        assert invoice is not None
        note = issue_credit_note(
            session, key=f"credit:{no}", invoice_no=invoice.invoice_no, reason="客户退货：包装破损",
            now=NOW + timedelta(days=3), zone=SHANGHAI,
        )  # fmt: skip
        assert note is not None
        invoice_no, note_no = invoice.invoice_no, note.invoice_no

    with read_only(engine) as session:
        pdf = invoice_pdf(session, note_no, SETTINGS)
        original = invoice_pdf(session, invoice_no, SETTINGS)
        assert invoice_pdf(session, "OF-1999-999999", SETTINGS) is None
    assert pdf is not None and original is not None
    text = pdf_text(pdf)

    assert "CREDIT NOTE" in text and note_no in text and note_no != invoice_no
    assert f"Corrects 更正发票: {invoice_no}" in text and f"corrects invoice {invoice_no}" in text
    assert "客户退货：包装破损" in text
    # 20.00 back: tax 20 × 0.13 / 1.13 = 2.30, net 17.70 — all negative, as is the quantity.
    assert row_of(text, "SKU-1001").endswith(" -2 10.00 13% -17.70 -2.30 -20.00")
    assert "CNY -17.70" in text and "CNY -2.30" in text and "CNY -20.00" in text
    assert "Due 到期日" not in text  # nothing to pay
    assert "INVOICE" in pdf_text(original) and "CREDIT NOTE" not in pdf_text(original)


def test_the_font_setting_is_honoured_and_a_missing_font_says_which_setting_to_set(tmp_path: Path) -> None:
    found = find_font()
    assert find_font(f"{found.path}#{found.face}") == found
    assert find_font(str(found.path)).face == 0
    for wrong in (str(tmp_path / "missing.ttf"), str(tmp_path), f"{found.path}#SC"):
        with pytest.raises(PdfFontError, match="ORDERFLOW_PDF_FONT"):
            find_font(wrong)
