"""A manager in a real browser: the fulfilment cockpit renders its cards and charts (canvas, no console errors), a
new order moves the order count within 5 s without a reload, a bar of the slowest stage opens the orders that
waited longest there (filters kept) and each links to its order page; a sales rep's cockpit counts only their own
orders; a composed cockpit is saved and shown. (The README's cockpit screenshots are taken after the demo, with
its orders: tests/e2e/test_demo_in_a_browser.py.)"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, expect

from tests.support.console import cli, console_url, signed_in_page, submit_small_order, wait_status
from tests.support.orders import make_order

DESKTOP: ViewportSize = {"width": 1440, "height": 1000}


def _errors(page: Page) -> list[str]:
    found: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if message.type == "error":
            found.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda exc: found.append(str(exc)))
    return found


async def _count_of(page: Page, kpi: str) -> str:
    return (await page.locator(f'.kpi-card[data-kpi="{kpi}"] [data-value]').inner_text()).strip()


async def test_the_cockpit_charts_drill_down_and_refresh_live(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    # An order that gets to picking (its stages then have dwell times), by the CLI.
    first = f"SO-CKP-{uuid.uuid4().hex[:6].upper()}"
    submit_small_order(stack, first)
    wait_status(stack, first, "PICKING")

    context = await browser.new_context(viewport=DESKTOP, locale="en-US")
    page = await signed_in_page(context, f"{console_url(stack)}/cockpit", "olga", seeded["passwords"]["olga"])
    errors = _errors(page)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Fulfilment efficiency")
    await expect(page.locator(".chart-canvas canvas").first).to_be_visible()
    charts = await page.locator(".chart-canvas").count()
    await expect(page.locator(".chart-canvas canvas")).to_have_count(charts, timeout=10_000)
    assert charts >= 6
    await page.screenshot(path=str(tmp_path / "cockpit-fulfilment.png"), full_page=True)

    # Live: the sales cockpit's order count moves within 5 s of a new order, without a reload.
    await page.get_by_role("link", name="Sales performance").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sales performance")
    before = int((await _count_of(page, "order_count")).replace(",", ""))
    await page.evaluate("window.__marker = 1")
    second = f"SO-CKP-{uuid.uuid4().hex[:6].upper()}"
    submit_small_order(stack, second)
    started = time.monotonic()
    await expect(page.locator('.kpi-card[data-kpi="order_count"] [data-value]')).to_have_text(
        f"{before + 1:,}", timeout=5_000
    )
    assert time.monotonic() - started <= 5.5
    assert await page.evaluate("window.__marker") == 1  # the same page: it was not reloaded
    await page.screenshot(path=str(tmp_path / "cockpit-sales.png"), full_page=True)

    # Drill-down: the slowest stage's bar → the orders that waited longest there, filters kept → the order page.
    await page.goto(f"{console_url(stack)}/cockpit/fulfilment?period=7d")
    chart = page.locator(".chart-canvas").first  # the fulfilment cockpit's first chart: dwell p90 by stage
    await expect(chart.locator("canvas")).to_be_visible()
    await expect(chart).to_have_attribute("data-rows", re.compile(r"[1-9]\d*"), timeout=10_000)
    data = await page.evaluate("fetch(document.querySelector('.chart-canvas').dataset.chart).then(r => r.json())")
    slowest = max(data["rows"], key=lambda r: r["value"] or 0)
    await chart.scroll_into_view_if_needed()
    box = await chart.bounding_box()
    assert box is not None
    # Click the slowest bar: ECharts tells where it drew it.
    point = await page.evaluate(
        """([key]) => {
          const el = document.querySelector('.chart-canvas');
          const chart = echarts.getInstanceByDom(el);
          const index = chart.getOption().xAxis[0].data.indexOf(key);
          return chart.convertToPixel({seriesIndex: 0}, [index, chart.getOption().series[0].data[index] / 2]);
        }""",
        [slowest["key"]],
    )
    await page.mouse.click(box["x"] + point[0], box["y"] + point[1])
    await expect(page).to_have_url(re.compile(r"/console/cockpit/orders\?"))
    assert "period=7d" in page.url and f"group={slowest['key']}" in page.url and "by=stage" in page.url
    await expect(page.get_by_role("heading", level=1)).to_contain_text(slowest["key"])
    first_row = page.locator("table.list tbody tr").first
    await expect(first_row).to_be_visible()
    await page.screenshot(path=str(tmp_path / "cockpit-drill-down.png"), full_page=True)
    listed = await first_row.locator("td a").first.inner_text()
    await first_row.locator("td a").first.click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(listed)
    await expect(page.get_by_role("link", name=re.compile("Temporal"))).to_have_attribute("href", re.compile(listed))
    assert errors == [], errors
    await context.close()


async def test_a_sales_rep_counts_their_own_orders_and_composes_a_cockpit(
    stack: dict[str, str], seeded: dict[str, Any], browser: Browser
) -> None:
    bob = f"SO-CKB-{uuid.uuid4().hex[:6].upper()}"
    made = make_order(bob, [("SKU-1001", 1, "199.00")]).model_copy(update={"sales_rep": "bob"})
    cli(stack, "submit", "-", stdin=made.model_dump_json())
    wait_status(stack, bob, "PICKING")
    everyone = cli(stack, "report", "--kpi", "order_count,sales_amount", "--period", "7d")
    alices = cli(stack, "report", "--kpi", "order_count,sales_amount", "--period", "7d", "--as", "alice")
    assert alices["scope"] == "orders of sales rep alice"
    assert alices["kpis"]["order_count"]["value"] < everyone["kpis"]["order_count"]["value"]

    context = await browser.new_context(viewport=DESKTOP, locale="en-US")
    page = await signed_in_page(context, f"{console_url(stack)}/cockpit/sales?period=7d", "alice",
                                seeded["passwords"]["alice"])  # fmt: skip
    errors = _errors(page)
    await expect(page.locator(".meta").first).to_contain_text("orders of sales rep alice")
    shown = int((await _count_of(page, "order_count")).replace(",", ""))
    assert shown == alices["kpis"]["order_count"]["value"]
    assert await page.locator("#f-sales_rep option").all_inner_texts() == ["any", "alice"]

    await page.get_by_role("link", name="+ New cockpit").click()
    await page.get_by_label("Name").fill("My week")
    await page.get_by_label("Orders", exact=True).check()
    await page.get_by_label("Sales", exact=True).check()
    await page.locator("#chart_kpi_0").select_option("sales_amount")
    await page.locator("#chart_by_0").select_option("product_line")
    await page.locator("#chart_kind_0").select_option("pie")
    await page.locator("#chart_kpi_1").select_option("order_count")
    await page.locator("#chart_by_1").select_option("stage")  # orders have no stage breakdown: refused
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("alert")).to_contain_text("cannot be broken down by stage")
    assert errors == ["Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"]
    errors.clear()  # the refusal's own answer, as intended
    await page.locator("#chart_by_1").select_option("day")
    await page.locator("#chart_kind_1").select_option("line")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("My week")
    await expect(page.locator(".chart-canvas canvas")).to_have_count(2, timeout=10_000)
    assert await page.locator(".kpi-card").count() == 2
    assert errors == [], errors
    await context.close()
