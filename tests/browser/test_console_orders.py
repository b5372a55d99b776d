"""The order list and the order page in a real browser: search and filters, each role sees what it may (a sales
rep only their own orders, also not another's by URL), and the order page tells the whole story."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import (
    PHONE,
    console_url,
    run_cli,
    screenshots,
    signed_in_page,
    submit_big_order,
    wait_status,
)


async def test_a_sales_rep_finds_her_own_orders_and_cannot_open_another_reps(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser
) -> None:
    submit_big_order(stack, "WEB-ORD-ALICE", sales_rep="alice")
    submit_big_order(stack, "WEB-ORD-BOB", sales_rep="bob")
    wait_status(stack, "WEB-ORD-BOB", "AWAITING_APPROVAL")
    url = console_url(stack)
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, f"{url}/orders", "alice", seeded["passwords"]["alice"])

    await page.get_by_label("Search").fill("WEB-ORD")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="WEB-ORD-ALICE")).to_be_visible()
    await expect(page.get_by_role("link", name="WEB-ORD-BOB")).to_have_count(0)
    await page.get_by_label("Search").fill("SKU-1018")  # by a line's SKU
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("link", name="WEB-ORD-ALICE")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    answer = await page.goto(f"{url}/orders/WEB-ORD-BOB")  # not by URL either
    assert answer is not None and answer.status == 404
    await expect(page.get_by_role("alert")).to_have_text("There is no such order.")
    await expect(page.locator("body")).not_to_contain_text("12999")

    answer = await page.goto(f"{url}/orders?from=yesterday")  # bad input: the reason beside the field, no 5xx
    assert answer is not None and answer.status == 422
    await expect(page.locator("#from-error")).to_have_text("a date like 2026-12-01")
    await context.close()


async def test_finance_opens_an_order_page_with_its_approvals_parcels_and_timeline(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    submit_big_order(stack, "WEB-ORD-PAGE")
    wait_status(stack, "WEB-ORD-PAGE", "AWAITING_APPROVAL")
    refused = run_cli(stack, "approve", "WEB-ORD-PAGE", "--as", "bob")  # a sales rep: refused, and audited
    assert refused.returncode == 1 and "cannot decide" in refused.stderr
    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])
    await page.get_by_role("link", name="Orders").click()
    await page.get_by_label("Status").select_option("AWAITING_APPROVAL")
    await page.get_by_label("Search").fill("WEB-ORD-PAGE")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("link", name="WEB-ORD-PAGE").click()

    await expect(page.get_by_role("heading", level=1)).to_contain_text("WEB-ORD-PAGE")
    await expect(page.locator("#order-status")).to_have_text("AWAITING_APPROVAL")
    temporal = page.get_by_role("link", name="Open its workflow in the Temporal UI")
    assert re.search(r"/namespaces/default/workflows/order-WEB-ORD-PAGE$", await temporal.get_attribute("href") or "")
    approvals = page.locator("section", has=page.get_by_role("heading", name="Approvals"))
    await expect(approvals).to_contain_text("refused attempt")  # bob's refused attempt is in the audit trail
    await expect(page.locator(".timeline li").first).to_contain_text("RECEIVED")
    await expect(page.locator(".timeline")).to_contain_text("level 1: finance")
    await page.screenshot(path=str(screenshots(tmp_path) / "order-page-desktop.png"), full_page=True)
    await context.close()
