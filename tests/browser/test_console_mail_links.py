"""The links in mails, followed in a real browser on the embedded stack: the approver opens the approve link from
the mail the SMTP sink received, confirms on a phone, the order moves on, and the same link is refused the second
time; the customer opens the tracking link from their shipping mail and sees the parcel delivered, and nothing of
anyone else's (a changed link opens nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ViewportSize, expect

from tests.support.console import (
    PHONE,
    cli,
    link_in,
    mails,
    screenshots,
    submit_big_order,
    submit_small_order,
    wait_status,
)

CUSTOMER_EMAIL = "buyer@xingchen.example"  # the seeded customer C-1001, whose orders the samples are


async def test_an_approver_approves_through_the_link_in_the_mail_and_the_link_then_is_refused(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    submit_big_order(stack, "WEB-MAIL-1")
    wait_status(stack, "WEB-MAIL-1", "AWAITING_APPROVAL")
    [mail] = mails(stack, "fiona@staff.orderflow.test", "WEB-MAIL-1")
    link = link_in(mail, "/console/approve/")

    context = await browser.new_context(viewport=PHONE, locale="en-US")  # the phone's mail app: no session
    page = await context.new_page()
    answer = await page.goto(link)
    assert answer is not None and answer.status == 200
    await expect(page.get_by_role("heading", level=1)).to_contain_text("WEB-MAIL-1")
    await expect(page.locator("main")).to_contain_text("You decide as fiona (finance), level 1.")
    await expect(page.locator("main")).to_contain_text("12999.00")
    assert wait_status(stack, "WEB-MAIL-1", "AWAITING_APPROVAL")  # opening the link decided nothing
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=str(screenshots(tmp_path) / "approve-from-mail-phone.png"), full_page=True)

    await page.get_by_label("Comment").fill("ok from my phone")
    await page.get_by_role("button", name="Approve").click()
    await expect(page.get_by_role("status")).to_have_text("Order WEB-MAIL-1 approved. Thank you.")
    view = wait_status(stack, "WEB-MAIL-1", "PICKING", "DISPATCHED", "IN_TRANSIT", "COMPLETED")
    [approval] = [a for a in view["approvals"] if "refused" not in a]
    assert (approval["by"], approval["comment"]) == ("fiona", "ok from my phone")

    again = await page.goto(link)  # the second time: refused, and nothing to press
    assert again is not None and again.status == 410
    await expect(page.get_by_role("alert")).to_contain_text("a link works once")
    await expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    await context.close()
    assert_token_not_logged(stack, link, "/console/approve/")


def assert_token_not_logged(stack: dict[str, str], link: str, prefix: str) -> None:
    """The API's access log shows the link's requests with the token masked: the log holds no working link."""
    token = link.rsplit(prefix, 1)[1]
    api_log = (Path(stack["ORDERFLOW_STATE_DIR"]) / "logs" / "api.log").read_text()
    assert f"{prefix}***" in api_log
    assert token not in api_log


async def test_the_customer_follows_the_tracking_link_in_the_shipping_mail_to_the_delivered_parcel(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    submit_small_order(stack, "WEB-TRACK-1")
    view = wait_status(stack, "WEB-TRACK-1", "PICKING")
    warehouse = view["allocations"][0]["warehouse"]
    cli(stack, "dispatch", "WEB-TRACK-1", "--warehouse", warehouse, "--carrier", "sim", "--tracking-no", "WEBTRK0001")
    wait_status(stack, "WEB-TRACK-1", "COMPLETED", timeout=90)
    [mail] = mails(stack, CUSTOMER_EMAIL, "Your order WEB-TRACK-1 was delivered")
    link = link_in(mail, "/track/")

    desktop: ViewportSize = {"width": 1280, "height": 900}
    for name, viewport, locale in (("phone", PHONE, "zh-CN"), ("desktop", desktop, "en-US")):
        context = await browser.new_context(viewport=viewport, locale=locale)
        page = await context.new_page()
        answer = await page.goto(link)
        assert answer is not None and answer.status == 200
        parcel = page.locator("#parcel-1")
        if locale == "en-US":
            await expect(page.locator("#stage")).to_have_text("Delivered.")
            await expect(parcel).to_contain_text("sim · WEBTRK0001")
            await expect(parcel.locator(".parcel-status")).to_have_text("Delivered")
            await expect(parcel.locator("ol.events li").first).to_contain_text("Delivered")  # newest first
            await expect(parcel).to_contain_text("Signed by")
        else:
            await expect(page.locator("#stage")).to_have_text("已签收。")
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert await parcel.locator("ol.events li").count() >= 3
        body = await page.locator("body").inner_text()
        for staff_data in ("alice", "finance", "WH-", "CREDIT", "199.00"):  # no rep, approvals, warehouse or prices
            assert staff_data not in body, staff_data
        assert await page.locator("a[href^='/console/orders'], form").count() == 0  # nowhere further to go
        await page.screenshot(path=str(screenshots(tmp_path) / f"tracking-{name}.png"), full_page=True)
        await context.close()

    context = await browser.new_context(locale="en-US")
    page = await context.new_page()
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    answer = await page.goto(forged)
    assert answer is not None and answer.status == 410
    await expect(page.get_by_role("alert")).to_contain_text("not valid")
    await page.goto(link)
    await page.get_by_role("link", name="中文").click()  # the language switch carries the page's path in back=
    await expect(page.locator("#stage")).to_have_text("已签收。")
    assert_token_not_logged(stack, link, "/track/")
    await context.close()
