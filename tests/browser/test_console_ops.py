"""Ops in a real browser on a phone: an order waiting for stock is on the exceptions page with the purchase
requisition it raised, and ops cancels it from there (the API's cancel, with a reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import PHONE, cli, console_url, screenshots, signed_in_page, wait_status
from tests.support.orders import make_order


async def test_ops_sees_a_backorder_and_its_requisition_and_cancels_the_order(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    order = make_order("WEB-BACK-1", [("SKU-1024", 100, "299.00")])  # the stylus: a few units in each warehouse
    cli(stack, "submit", "-", stdin=order.model_dump_json())
    wait_status(stack, "WEB-BACK-1", "AWAITING_APPROVAL")
    cli(stack, "approve", "WEB-BACK-1", "--as", "fiona")
    wait_status(stack, "WEB-BACK-1", "BACKORDERED")
    otto = cli(stack, "users", "add", "otto", "--role", "ops")

    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "otto", otto["password"])
    await page.locator("#ops").get_by_role("link", name="Exceptions").click()
    item = page.locator("#x-backordered-WEB-BACK-1")
    await expect(item).to_contain_text("SKU-1024")  # the shortage
    await expect(page.locator("#requisitions")).to_contain_text("SKU-1024")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=str(screenshots(tmp_path) / "ops-exceptions-phone.png"), full_page=True)

    await item.get_by_label("Reason for cancelling").fill("customer will not wait")
    await item.get_by_role("button", name="Cancel order").click()
    await expect(page.get_by_role("status")).to_have_text("WEB-BACK-1 cancelled")
    wait_status(stack, "WEB-BACK-1", "CANCELLED")
    await page.reload()
    await expect(page.locator("#x-backordered-WEB-BACK-1")).to_have_count(0)
    await context.close()
