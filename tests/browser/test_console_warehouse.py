"""The warehouse in a real browser: the pick lists of my warehouses in my inbox, a list in walking order that
prints with its delivery note (发货单), marking it picked, dispatching it — a number another order already uses
is refused beside the field and changes nothing — and nobody outside the warehouse opens it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import (
    PHONE,
    cli,
    console_url,
    screenshots,
    signed_in_page,
    submit_small_order,
    wait_status,
)


async def test_a_warehouse_hand_prints_a_pick_list_marks_it_picked_and_dispatches(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    submit_small_order(stack, "WEB-PICK-0")
    submit_small_order(stack, "WEB-PICK-1")
    first = wait_status(stack, "WEB-PICK-0", "PICKING")
    warehouse = first["allocations"][0]["warehouse"]
    cli(stack, "dispatch", "WEB-PICK-0", "--warehouse", warehouse, "--carrier", "sim", "--tracking-no", "WEBDUP0001")
    view = wait_status(stack, "WEB-PICK-1", "PICKING")
    bins = [a["bin"] for a in view["allocations"]]

    url = console_url(stack)
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, url, "wang", seeded["passwords"]["wang"])
    link = page.get_by_role("link", name=re.compile(r"^WEB-PICK-1 · WH-"))
    await expect(link).to_be_visible()
    await link.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("WEB-PICK-1")
    await expect(page.locator("table.pick td.bin")).to_have_text(sorted(bins))
    await expect(page.locator(".delivery-note")).to_contain_text("张三")  # the parcel's addressee
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    pick_list_url = page.url

    await page.emulate_media(media="print")  # what the printer gets: the list and the note, no buttons or forms
    await expect(page.get_by_role("button", name="Mark picked")).to_be_hidden()
    await expect(page.locator(".delivery-note")).to_be_visible()
    await page.screenshot(path=str(screenshots(tmp_path) / "pick-list-print.png"), full_page=True)
    await page.emulate_media(media="screen")

    await page.get_by_role("button", name="Mark picked").click()
    await expect(page.locator(".meta")).to_contain_text("picked by wang")

    await page.get_by_label("Carrier").select_option("sim")
    await page.get_by_label("Tracking no").fill("WEBDUP0001")  # WEB-PICK-0's parcel
    await page.get_by_role("button", name="Dispatch", exact=True).click()
    await expect(page.locator("#tracking-error")).to_contain_text("WEBDUP0001")
    await expect(page.get_by_label("Tracking no")).to_have_value("WEBDUP0001")  # the form keeps what was typed
    assert cli(stack, "status", "WEB-PICK-1")["status"] == "PICKING"  # nothing changed

    await page.get_by_label("Tracking no").fill("WEBPICK0001")
    await page.get_by_role("button", name="Dispatch", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("WEBPICK0001 dispatched")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("WEB-PICK-1")
    done = wait_status(stack, "WEB-PICK-1", "DISPATCHED", "IN_TRANSIT", "OUT_FOR_DELIVERY", "COMPLETED")
    assert [s["tracking_no"] for s in done["shipments"]] == ["WEBPICK0001"]
    await context.close()

    # Outside the warehouse, the list is not there at all.
    other = await browser.new_context(locale="en-US")
    sales = await signed_in_page(other, url, "bob", seeded["passwords"]["bob"])
    answer = await sales.goto(pick_list_url)
    assert answer is not None and answer.status == 404
    await other.close()
