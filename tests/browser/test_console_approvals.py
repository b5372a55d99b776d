"""The console in a real browser (Debian's chromium through Playwright) on the embedded stack as a user runs it
(`python -m dev.stack up`: dev server, worker, simulator with its SMTP sink, the API serving /console).

An approver signs in on a phone, sees why an order needs her, approves it and the order moves on; the inbox
updates by itself when an order arrives and when another approver takes one; a wrong password, a form without
its CSRF token and a session ended by a password reset are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, expect

from tests.support.console import PHONE, cli, console_url, screenshots, signed_in_page, submit_big_order, wait_status


async def test_an_approver_approves_from_the_inbox_on_a_phone_and_the_order_moves_on(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    submit_big_order(stack, "WEB-APPROVE-1")
    wait_status(stack, "WEB-APPROVE-1", "AWAITING_APPROVAL")
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])

    todo = page.locator("#todo-WEB-APPROVE-1")
    await expect(todo).to_be_visible()
    await expect(todo).to_contain_text("Level 1 · finance")
    await expect(todo).to_contain_text("12999.00")
    await expect(todo.locator(".reasons li").first).to_be_visible()  # why it needs her: the rule that fired
    await expect(todo).to_contain_text("Credit exposure with this order")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    await page.screenshot(path=str(screenshots(tmp_path) / "inbox-phone.png"), full_page=True)

    await todo.get_by_label("Comment").fill("key account, ok")
    await todo.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_contain_text("WEB-APPROVE-1 approved")
    await expect(page.locator("#todo-WEB-APPROVE-1")).to_have_count(0)

    view = wait_status(stack, "WEB-APPROVE-1", "PICKING", "DISPATCHED", "IN_TRANSIT", "COMPLETED")
    [approval] = [a for a in view["approvals"] if "refused" not in a]
    assert approval["by"] == "fiona" and approval["comment"] == "key account, ok"
    await context.close()


async def test_the_inbox_updates_itself_when_an_order_arrives_and_when_another_approver_takes_it(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    fay = cli(stack, "users", "add", "fay", "--role", "finance", "--email", "fay@staff.orderflow.test")
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])
    await expect(page.get_by_role("heading", name=re.compile("待办"))).to_be_visible()  # the browser's language

    submit_big_order(stack, "WEB-LIVE-1")
    await expect(page.locator("#todo-WEB-LIVE-1")).to_be_visible(timeout=15_000)  # no reload: the page polls
    await page.screenshot(path=str(screenshots(tmp_path) / "inbox-desktop-zh.png"), full_page=True)
    cli(stack, "approve", "WEB-LIVE-1", "--as", fay["name"], "--comment", "taken by fay")
    await expect(page.locator("#todo-WEB-LIVE-1")).to_have_count(0, timeout=15_000)
    await context.close()


async def test_a_wrong_password_a_form_without_its_csrf_token_and_an_ended_session_are_refused(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser
) -> None:
    url = console_url(stack)
    carol = cli(stack, "users", "add", "carol", "--role", "sales")  # her own user: her password is reset below
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_label("User name").fill("carol")
    await page.get_by_label("Password", exact=True).fill("not her password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("wrong user name or password")
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    assert not [c for c in await context.cookies() if c["name"] == "of_session"]

    page = await signed_in_page(context, url, "carol", carol["password"])
    [cookie] = [c for c in await context.cookies() if c["name"] == "of_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert await page.evaluate("document.cookie.includes('of_session')") is False  # scripts cannot read it
    # The same browser, signed in, posting without the form's token (what another site's form would do).
    forged = await context.request.post(f"{url}/sign-out", form={"csrf": "guess"}, max_redirects=0)
    assert forged.status == 403
    await page.reload()
    await expect(page).to_have_url(re.compile(r"/console$"))  # still signed in: the forged sign-out did nothing

    cli(stack, "users", "password", "carol")  # a password reset ends her sessions
    await page.reload()
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    await context.close()


async def test_an_approver_approves_several_orders_at_once_each_checked_on_its_own(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser
) -> None:
    numbers = ["WEB-BULK-1", "WEB-BULK-2", "WEB-BULK-3"]
    submit_big_order(stack, "WEB-BULK-1")
    submit_big_order(stack, "WEB-BULK-2")
    submit_big_order(stack, "WEB-BULK-3", sales_rep="fiona")  # her own sale: she may not approve it
    for number in numbers:
        wait_status(stack, number, "AWAITING_APPROVAL")
    context = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(context, console_url(stack), "fiona", seeded["passwords"]["fiona"])
    for number in numbers:
        await page.get_by_label(f"Tick for approving together: {number}").check()
    await page.wait_for_timeout(4500)  # a poll of the live inbox: the ticks survive it
    await expect(page.get_by_label("Tick for approving together: WEB-BULK-1")).to_be_checked()
    await page.get_by_label("Comment for the ticked orders").fill("month-end batch")
    await page.get_by_role("button", name="Approve the ticked orders").click()

    result = page.locator("#bulk-result")
    await expect(result).to_contain_text("Approved: WEB-BULK-1, WEB-BULK-2")
    await expect(result.locator("li")).to_have_text(
        "WEB-BULK-3: fiona is the order's own sales rep and cannot approve it"
    )
    for number in numbers[:2]:
        view = wait_status(stack, number, "PICKING", "DISPATCHED", "IN_TRANSIT", "COMPLETED")
        [approval] = [a for a in view["approvals"] if "refused" not in a]
        assert (approval["by"], approval["comment"]) == ("fiona", "month-end batch")
    assert wait_status(stack, "WEB-BULK-3", "AWAITING_APPROVAL")["approvals"][0]["refused"]  # audited, not applied
    await expect(page.locator("#todo-WEB-BULK-3")).to_be_visible()
    await context.close()


async def test_an_approver_away_names_a_substitute_who_decides_on_her_behalf(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    url = console_url(stack)
    fiona = await browser.new_context(viewport=PHONE, locale="en-US")
    page = await signed_in_page(fiona, url, "fiona", seeded["passwords"]["fiona"])
    await page.get_by_role("link", name="Out of office").click()
    await page.get_by_label("Substitute", exact=True).select_option("olga")
    last_day = await page.get_by_label("First day away").input_value()  # today, in the business's zone
    await page.get_by_label("Last day away").fill(last_day)
    await page.get_by_role("button", name="Name a substitute").click()
    await expect(page.get_by_role("status")).to_have_text("The substitute is named.")
    named = page.locator("#substitutions li")
    await expect(named).to_contain_text("olga decides for fiona (finance)")
    await expect(named).to_contain_text("in force now")

    submit_big_order(stack, "WEB-AWAY-1")
    wait_status(stack, "WEB-AWAY-1", "AWAITING_APPROVAL")
    olga = await browser.new_context(viewport=PHONE, locale="en-US")
    inbox = await signed_in_page(olga, url, "olga", seeded["passwords"]["olga"])
    covering = inbox.locator("#covering-fiona")
    await expect(covering.get_by_role("heading")).to_contain_text("Standing in for fiona (finance) until")
    todo = covering.locator("#todo-WEB-AWAY-1")
    await expect(todo).to_contain_text("You decide this on behalf of fiona.")
    assert await inbox.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await inbox.screenshot(path=str(screenshots(tmp_path) / "inbox-substitute-phone.png"), full_page=True)
    await todo.get_by_label("Comment").fill("for fiona while she is away")
    await todo.get_by_role("button", name="Approve").click()
    await expect(inbox.get_by_role("status")).to_contain_text("WEB-AWAY-1 approved")

    view = wait_status(stack, "WEB-AWAY-1", "PICKING", "DISPATCHED", "IN_TRANSIT", "COMPLETED")
    [approval] = [a for a in view["approvals"] if "refused" not in a]
    assert (approval["by"], approval["role"], approval["on_behalf_of"]) == ("olga", "finance", "fiona")
    order = await inbox.goto(f"{url}/orders/WEB-AWAY-1")
    assert order is not None and order.status == 200
    await expect(inbox.locator("main")).to_contain_text("olga on behalf of fiona")

    await page.reload()  # fiona is back: she withdraws it, and olga's inbox holds only her own work again
    await page.locator("#substitutions li").get_by_role("button", name="Withdraw").click()
    await expect(page.get_by_role("status")).to_have_text("The substitution is withdrawn.")
    await inbox.goto(url)
    await expect(inbox.locator("#covering-fiona")).to_have_count(0)
    await fiona.close()
    await olga.close()
