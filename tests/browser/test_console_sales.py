"""A sales rep in a real browser on a phone: submits an order through the form (a mistake is shown beside its
field and nothing starts; corrected, the order starts), copies the customer's tracking link, and cancels the
order before it leaves the warehouse."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import PHONE, console_url, read_order, signed_in_page, wait_status


async def test_a_sales_rep_submits_an_order_through_the_form_copies_its_tracking_link_and_cancels_it(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser
) -> None:
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, f"{console_url(stack)}/orders", "alice", seeded["passwords"]["alice"])
    await page.get_by_role("link", name="New order").click()
    order_no = (await page.locator("h1 .count").inner_text()).strip()
    assert re.fullmatch(r"SO-\d{8}-[0-9A-F]{6}", order_no)

    await page.get_by_label("Customer", exact=True).select_option("C-1001")
    await page.get_by_label("Recipient").fill("王芳")
    await page.get_by_label("Phone").fill("13900000000")
    await page.get_by_label("Region").select_option("华东")
    await page.get_by_label("Province").fill("上海")
    await page.get_by_label("City").fill("上海")
    await page.get_by_label("Street address").fill("徐汇区 漕溪北路 88 号")
    await page.get_by_label("Line 1: Product").select_option("SKU-1001")
    await page.get_by_label("Qty").first.fill("two")
    await page.get_by_role("button", name="Submit order").click()
    await expect(page.get_by_role("alert")).to_contain_text("Nothing was submitted")
    await expect(page.locator("#qty_1-error")).to_contain_text("valid integer")
    await expect(page.get_by_label("Recipient")).to_have_value("王芳")  # what was typed is kept
    assert read_order(stack, order_no) is None  # nothing started
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    await page.get_by_label("Qty").first.fill("2")
    await page.get_by_role("button", name="Submit order").click()
    await expect(page.get_by_role("status")).to_have_text("Order submitted: it is being checked now.")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(order_no)
    view = wait_status(stack, order_no, "PICKING")
    assert view["sales_rep"] == "alice" and view["lines"][0]["qty"] == 2

    await page.reload()
    link = await page.get_by_label("The customer's tracking link").input_value()
    assert "/track/" in link
    await page.get_by_role("button", name="Copy").click()
    await expect(page.get_by_role("button", name="Copied")).to_be_visible()

    await page.get_by_label("Reason for cancelling").fill("customer ordered twice")
    await page.get_by_role("button", name="Cancel order").click()
    await expect(page.get_by_role("status")).to_have_text("Order cancelled.")
    done = wait_status(stack, order_no, "CANCELLED")
    assert "customer ordered twice" in done["timeline"][-1]["detail"]
    await expect(page.get_by_role("button", name="Cancel order")).to_have_count(0, timeout=10_000)
    await context.close()
