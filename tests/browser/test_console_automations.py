"""The Done-when of the automations issue, in a real browser against the running stack: ops add "when an order
from channel taobao is dispatched, e-mail ops" from the console form, dry run it against a demo order, enable it,
and the mail is in the SMTP sink after the next dispatch — nothing restarted. An order from another channel gets
no mail."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from tests.support.console import cli, console_url, mails, screenshots, signed_in_page, wait_status
from tests.support.orders import make_order

OPS_MAIL = "olga@staff.orderflow.test"


def subjects_with(stack: dict[str, str], text: str) -> list[str]:
    """The subjects of the mails in the stack's SMTP sink that contain `text` (no waiting)."""
    sink = f"http://127.0.0.1:{stack['ORDERFLOW_SIMULATOR_PORT']}/mail/messages"
    return [m["subject"] for m in httpx.get(sink, timeout=5).json() if text in m["subject"]]


async def test_ops_add_a_rule_in_the_form_dry_run_it_enable_it_and_get_the_mail_on_dispatch(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    taobao = make_order("TB-AUTO-1", [("SKU-1001", 1, "199.00")], channel="taobao")
    web = make_order("WEB-AUTO-1", [("SKU-1001", 1, "199.00")])
    for order in (taobao, web):
        cli(stack, "submit", "-", stdin=order.model_dump_json())
    views = {no: wait_status(stack, no, "PICKING") for no in ("TB-AUTO-1", "WEB-AUTO-1")}

    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "olga", seeded["passwords"]["olga"])
    await page.get_by_role("navigation", name="pages").get_by_role("link", name="Automations").click()
    await expect(page.locator("#rule-new-order-tell-sales-rep")).to_be_visible()  # the defaults are there
    await page.get_by_role("link", name="New automation").click()

    await page.get_by_label("Name", exact=True).fill("taobao-dispatched-mail-ops")
    await page.get_by_label("Description").fill("Taobao orders on their way: ops hear of it by mail")
    await page.get_by_label("Owner").fill("ops")
    await expect(page.get_by_label("To status")).to_be_hidden()  # only the chosen trigger's fields show
    await page.get_by_label("Trigger").select_option("status_changed")
    await page.get_by_label("To status").select_option("DISPATCHED")
    await page.get_by_label("Condition").fill('channel == "taobao"')
    first = page.locator("#action-0")
    await expect(first.get_by_label("Subject")).to_be_hidden()
    await first.get_by_label("Do", exact=True).select_option("notify")
    await first.get_by_label("To", exact=True).fill("role:ops")
    await first.get_by_label("Subject").fill("{order_no} dispatched ({channel})")
    await first.get_by_label("Message").fill("{订单号} for {customer_name} left with tracking number {物流单号}.")
    await first.get_by_label("e-mail").check()
    await page.screenshot(path=str(screenshots(tmp_path) / "automation-form.png"), full_page=True)
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.locator("#state-title")).to_have_text("v1 · disabled")  # saved disabled, to try it first

    await page.get_by_label("Order number or SKU@WAREHOUSE").fill("TB-AUTO-1")
    await page.get_by_role("button", name="Dry run").click()
    result = page.locator("#dry-run-result")
    await expect(result).to_contain_text("Branch 1 holds: these actions would run")
    await expect(result).to_contain_text("TB-AUTO-1 dispatched (taobao)")
    await page.screenshot(path=str(screenshots(tmp_path) / "automation-dry-run.png"), full_page=True)
    await page.get_by_label("Order number or SKU@WAREHOUSE").fill("WEB-AUTO-1")
    await page.get_by_role("button", name="Dry run").click()
    await expect(page.locator("#dry-run-result")).to_contain_text("No branch holds")

    await page.get_by_role("button", name="Enable").click()
    await expect(page.locator("#state-title")).to_have_text("v2 · enabled")
    await asyncio.sleep(2)  # the dispatcher reads the rules within a second of a change (0.5 s pass); no restart

    for no, tracking_no in (("TB-AUTO-1", "TBAUTO0001"), ("WEB-AUTO-1", "WEBAUTO0001")):
        warehouse = views[no]["allocations"][0]["warehouse"]
        cli(stack, "dispatch", no, "--warehouse", warehouse, "--carrier", "sim", "--tracking-no", tracking_no)
    [mail] = mails(stack, OPS_MAIL, "TB-AUTO-1 dispatched (taobao)", timeout=60)
    assert "TB-AUTO-1 for " in mail["text"] and "tracking number TBAUTO0001" in mail["text"]
    wait_status(stack, "WEB-AUTO-1", "DISPATCHED", "COMPLETED")
    await asyncio.sleep(2)  # the other order's run had time to run, and sent nothing
    assert not subjects_with(stack, "WEB-AUTO-1 dispatched")

    await page.get_by_role("link", name="Run log").first.click()
    await expect(page.locator("table.runs")).to_contain_text("TB-AUTO-1")
    await page.locator("table.runs tr", has_text="TB-AUTO-1").get_by_role("link").first.click()
    await expect(page.locator("#run-state")).to_have_text("completed")
    await expect(page.locator("#steps tr.step-done")).to_contain_text("notified email olga@staff.orderflow.test")
    await page.screenshot(path=str(screenshots(tmp_path) / "automation-run.png"), full_page=True)
    await context.close()
