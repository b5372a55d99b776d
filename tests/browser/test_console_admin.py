"""The admin in a real browser: adds a warehouse hand (the password shown once), who then signs in and finds the
pick lists of their warehouse; then disables them, and they are out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import console_url, screenshots, signed_in_page


async def test_an_admin_adds_a_warehouse_hand_who_signs_in_and_later_disables_them(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    url = console_url(stack)
    admin = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = await signed_in_page(admin, url, "root", seeded["passwords"]["root"])
    await page.get_by_role("link", name="Admin", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Admin")
    form = page.locator("#add-user")
    await form.get_by_label("User name").fill("zhou")
    await form.get_by_label("Role").select_option("warehouse")
    await form.get_by_label("E-mail").fill("zhou@staff.orderflow.test")
    await form.get_by_role("checkbox", name=re.compile("WH-GZ")).check()
    await form.get_by_role("button", name="Add a user").click()
    await expect(page.locator("#shown-once")).to_contain_text("zhou")
    password = (await page.locator("#new-password").inner_text()).strip()
    await expect(page.locator("#user-zhou")).to_contain_text("WH-GZ")
    await page.screenshot(path=str(screenshots(tmp_path) / "admin-desktop.png"), full_page=True)

    hand = await browser.new_context(locale="en-US")
    mine = await signed_in_page(hand, url, "zhou", password)
    await expect(mine.get_by_role("heading", name=re.compile("Pick lists to do"))).to_be_visible()

    await page.get_by_role("link", name="zhou").click()
    await page.get_by_role("button", name="Disable the user").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await mine.reload()
    await expect(mine).to_have_url(re.compile(r"/console/sign-in"))  # their session ended
    await admin.close()
    await hand.close()
