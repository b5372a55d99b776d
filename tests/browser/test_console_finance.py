"""Finance in a real browser: confirms a prepayment that arrived (the order moves on), approves the refund of the
paid order when it is then cancelled (the stack's approval amount is 100.00: tests/browser/conftest.py), which the
payment provider then makes; opens the order's invoice page and its PDF; imports a bank statement and matches the
line it could not match by hand; reads the reconciliation, which adds up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import PHONE, cli, console_url, read_order, screenshots, signed_in_page, wait_status
from tests.support.orders import make_order


async def test_finance_confirms_a_prepayment_and_records_the_refund_when_the_order_is_cancelled(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    order = make_order("WEB-PREPAID-1", [("SKU-1001", 1, "199.00")], payment={"method": "prepaid", "paid": False})
    cli(stack, "submit", "-", stdin=order.model_dump_json())
    wait_status(stack, "WEB-PREPAID-1", "AWAITING_PAYMENT")
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])
    await page.locator("#money").get_by_role("link", name="Payments to confirm").click()

    payment = page.locator("#payment-WEB-PREPAID-1")
    await expect(payment).to_contain_text("CNY 199.00")
    await page.screenshot(path=str(screenshots(tmp_path) / "finance-phone.png"), full_page=True)
    await payment.get_by_role("button", name="Confirm payment received").click()  # no reference: refused
    await expect(payment.get_by_label("Payment reference (bank or provider)")).to_have_js_property(
        "validity.valid", False
    )
    await payment.get_by_label("Payment reference (bank or provider)").fill("ALIPAY-20261202-77")
    await payment.get_by_role("button", name="Confirm payment received").click()
    await expect(page.get_by_role("status")).to_have_text("WEB-PREPAID-1 payment confirmed")
    view = wait_status(stack, "WEB-PREPAID-1", "PICKING")
    assert view["paid"] is True

    cli(stack, "cancel", "WEB-PREPAID-1", "--reason", "customer withdrew")
    wait_status(stack, "WEB-PREPAID-1", "CANCELLED")
    wait_refund(stack, "WEB-PREPAID-1", "awaiting_approval")  # its RefundPayment opened it
    await page.reload()
    refund = page.locator("#approve-refund-WEB-PREPAID-1")  # 199.00, over the stack's 100.00
    await expect(refund).to_contain_text("customer withdrew")
    await expect(refund).to_contain_text("CNY 199.00")
    await refund.get_by_role("button", name="Decline").click()  # declining needs a comment: refused, nothing changes
    await expect(refund.get_by_role("alert")).to_contain_text("needs a comment")
    await page.locator("#approve-refund-WEB-PREPAID-1").get_by_role("button", name="Approve refund").click()
    await expect(page.get_by_role("status")).to_have_text("WEB-PREPAID-1 refund approved: it is being paid out")
    await expect(page.locator("#approve-refund-WEB-PREPAID-1")).to_have_count(0)
    paid_back = wait_refund(stack, "WEB-PREPAID-1", "made")
    assert (paid_back["state"], paid_back["amount"], paid_back["decided_by"]) == ("made", "199.00", "fiona")
    await page.goto(f"{console_url(stack)}/orders/WEB-PREPAID-1")
    await expect(page.locator("#refund-state")).to_contain_text("refunded")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await context.close()


def wait_refund(stack: dict[str, str], order_no: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
    """The order's refund once it is in `state` (its workflow records it, and asks the simulator's provider)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = read_order(stack, order_no)
        if view is not None and view["refund"] is not None and view["refund"]["state"] == state:
            return dict(view["refund"])
        time.sleep(0.3)
    raise AssertionError(f"the refund of {order_no} is not {state}: {read_order(stack, order_no)}")


async def test_finance_reads_an_invoice_matches_its_payment_from_a_statement_and_reconciles(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    order = make_order("WEB-INVOICE-1", [("SKU-1001", 2, "199.00"), ("SKU-1006", 1, "129.00")])  # credit, 527.00
    cli(stack, "submit", "-", stdin=order.model_dump_json())
    view = wait_status(stack, "WEB-INVOICE-1", "PICKING")
    warehouse = view["allocations"][0]["warehouse"]
    cli(stack, "dispatch", "WEB-INVOICE-1", "--warehouse", warehouse, "--carrier", "sim", "--tracking-no", "WEBINV0001")
    [invoice] = wait_status(stack, "WEB-INVOICE-1", "DISPATCHED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED",
                            "COMPLETED")["invoices"]  # fmt: skip
    number = invoice["invoice_no"]
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])
    await page.goto(f"{console_url(stack)}/finance/invoices")
    row = page.locator(f"#inv-{number}")
    await expect(row).to_contain_text("CNY 527.00")
    await expect(row).to_contain_text("not yet due")
    await row.get_by_role("link", name=number).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {number}")
    await expect(page.locator("#invoice-total")).to_have_text("527.00")
    await expect(page.locator(".invoice-lines tbody tr")).to_have_count(2)
    await page.screenshot(path=str(screenshots(tmp_path) / "invoice.png"), full_page=True)
    async with page.expect_download() as pdf:
        await page.get_by_role("link", name="Download PDF").click()
    assert (await pdf.value).suggested_filename == f"{number}.pdf"

    statement = tmp_path / "statement.csv"
    statement.write_text(
        f"date,amount,payer,reference\n2026-12-04,527.00,上海星辰科技,{number}\n2026-12-04,88.00,Unknown Ltd,gift?\n",
        encoding="utf-8",
    )
    await page.goto(f"{console_url(stack)}/finance/bank")
    await page.get_by_label("Statement (CSV)").set_input_files(str(statement))
    await page.get_by_role("button", name="Import").click()
    await expect(page.get_by_role("status")).to_have_text(
        "2 lines read: 1 matched and booked, 1 to match, 0 imported before."
    )
    await expect(page.locator("#to-match .todo")).to_have_count(1)
    await expect(page.locator("#to-match")).to_contain_text("no invoice or order")
    await page.screenshot(path=str(screenshots(tmp_path) / "finance-bank.png"), full_page=True)
    assert wait_status(stack, "WEB-INVOICE-1", "DISPATCHED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED",
                       "COMPLETED")["settlement"] == "paid"  # fmt: skip
    await page.get_by_role("link", name="Reconciliation").click()
    await expect(page.locator("#adds-up")).to_contain_text("The movement adds up")
    async with page.expect_download() as sheet:
        await page.get_by_role("link", name="Download CSV").click()
    assert (await sheet.value).suggested_filename.startswith("reconciliation-")
    await context.close()
