"""Finance in a real browser: confirms a prepayment that arrived (the order moves on), and records the refund of
a paid order that was then cancelled; the inbox points at both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import PHONE, cli, console_url, screenshots, signed_in_page, wait_status
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
    await page.reload()
    refund = page.locator("#refund-WEB-PREPAID-1")
    await expect(refund).to_contain_text("customer withdrew")
    await refund.get_by_label("Refund reference (bank or provider)").fill("ALIPAY-RF-1")
    await refund.get_by_role("button", name="Record refund made").click()
    await expect(page.get_by_role("status")).to_have_text("WEB-PREPAID-1 refund recorded")
    await expect(page.locator("#refund-WEB-PREPAID-1")).to_have_count(0)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await context.close()
