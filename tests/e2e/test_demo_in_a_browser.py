"""`make demo` as a newcomer meets it, on its own embedded stack: the demo plays its sample orders through, leaves
one waiting for finance and prints the console's address and the demo users' passwords; the newcomer signs in as
fiona in a phone-sized browser window and approves that order; the demo (`--follow`) then takes it to signed
receipt and ends well. (The Makefile's `demo` target is this command after `python -m dev.stack up`.)"""

from __future__ import annotations

import asyncio
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from tests.support.browser import launch_chromium
from tests.support.console import PHONE, cli, screenshots, signed_in_page
from tests.support.embedded_stack import embedded_stack

ROOT = Path(__file__).resolve().parents[2]
ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
# What the demo prints once its orders have played through (rich may wrap it: matched on the joined output).
LEFT_FOR_YOU = re.compile(
    r"Console: (http://\S+/console) — (\S+) waits for finance: sign in as fiona \(password (\S+)\)"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from embedded_stack(tmp_path_factory)


class Output:
    """A running process's output, read as it comes (the demo keeps running while it waits for the person)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._fresh: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._fresh.put(line)
        self._fresh.put(None)

    def text(self) -> str:
        return " ".join(" ".join(self.lines).split())

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := pattern.search(self.text()):
                return found
            try:
                line = self._fresh.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
        raise AssertionError(f"not seen: {pattern.pattern}\n{''.join(self.lines)[-3000:]}")


def seconds_in(view: dict[str, Any], stage: str) -> float:
    """How long the order spent in `stage`, from its timeline as the order view shows it."""
    timeline = view["timeline"]
    return sum(
        (datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])).total_seconds()
        for a, b in zip(timeline, timeline[1:], strict=False)
        if a["status"] == stage
    )


async def approve_on_a_phone(url: str, order_no: str, password: str) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context(viewport=PHONE, locale="en-US")
            page = await signed_in_page(context, url, "fiona", password)
            todo = page.locator(f"#todo-{order_no}")
            await expect(todo).to_be_visible()
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await todo.get_by_label("Comment").fill("approved from my phone")
            await todo.get_by_role("button", name="Approve").click()
            await expect(page.get_by_role("status")).to_contain_text(f"{order_no} approved")
        finally:
            await browser.close()


async def open_the_cockpit(url: str, password: str, shots: Path) -> tuple[str, list[str]]:
    """Every card of both cockpits is filled; the slowest stage's bar lists the orders that waited longest there
    (the README's cockpit screenshots are these pages)."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            context = await browser.new_context(viewport={"width": 1440, "height": 1000}, locale="en-US")
            page = await signed_in_page(context, url, "olga", password)
            for board in ("fulfilment", "sales"):
                await page.goto(f"{url}/{board}")
                values = await page.locator(".kpi-card [data-value]").all_inner_texts()
                titles = await page.locator(".kpi-card .kpi-title").all_inner_texts()
                empty = [title for title, value in zip(titles, values, strict=True) if value.strip() == "–"]
                assert values and not empty, f"{board}: no figure for {empty}"
                await expect(page.locator(".chart-canvas canvas")).to_have_count(
                    await page.locator(".chart-canvas").count(), timeout=15_000
                )
                await page.screenshot(path=str(shots / f"cockpit-{board}.png"), full_page=True)
            await page.goto(f"{url}/fulfilment")
            chart = page.locator(".chart-canvas").first  # dwell p90 by stage
            await expect(chart).to_have_attribute("data-rows", re.compile(r"[1-9]"), timeout=15_000)
            await chart.scroll_into_view_if_needed()
            slowest, x, y = await page.evaluate(
                """() => {
                  const chart = echarts.getInstanceByDom(document.querySelector('.chart-canvas'));
                  const option = chart.getOption();
                  const values = option.series[0].data;
                  const index = values.indexOf(Math.max(...values));
                  const [x, y] = chart.convertToPixel({seriesIndex: 0}, [index, values[index] / 2]);
                  return [option.xAxis[0].data[index], x, y];
                }"""
            )
            box = await chart.bounding_box()
            assert box is not None
            await page.mouse.click(box["x"] + x, box["y"] + y)
            await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Stage {slowest}")
            listed = await page.locator("table.list tbody tr td:first-child a").all_inner_texts()
            await page.screenshot(path=str(shots / "cockpit-drill-down.png"), full_page=True)
            return str(slowest), listed
        finally:
            await browser.close()


def test_a_newcomer_approves_the_demos_order_on_a_phone_and_the_demo_takes_it_to_signed_receipt(
    stack: dict[str, str], tmp_path: Path
) -> None:
    demo = subprocess.Popen(
        [ORDERFLOW, "demo", "--follow"],
        cwd=ROOT,
        env={**stack, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = Output(demo)
        url, order_no, password = output.wait_for(LEFT_FOR_YOU, timeout=240).groups()
        users = output.wait_for(re.compile(r"Demo users \(console passwords, new each demo run\): (.+?) Waiting"), 10)
        assert re.search(r"all \d+ orders reached their expected end state", output.text())
        money = output.text()  # the money table: a matched and an unmatched bank line, a reconciliation that adds up
        assert re.search(r"matched and booked │ 1 \([\d.]+\) — pays OF-\d{4}-\d{6}", money), money[-3000:]
        assert re.search(r"left to match \(console: Finance → Bank lines\) │ 1 ", money)
        assert re.search(r"reconciliation: adds up │ yes", money) and re.search(r"credit notes [^│]*│ [1-9]", money)
        assert re.search(r"refunds paid back through the provider │ 1 ", money)
        for name in ("fiona (finance)", "derek (finance_director)", "wang (warehouse)", "olga (ops)", "root (admin)"):
            assert name in users[1]

        asyncio.run(approve_on_a_phone(url, order_no, password))
        olga = re.search(r"olga \(ops\) ([^\s,]+)", users[1])
        assert olga is not None
        stage, listed = asyncio.run(
            open_the_cockpit(url.replace("/console", "/console/cockpit", 1), olga[1], screenshots(tmp_path))
        )
        waited = [seconds_in(cli(stack, "status", number), stage) for number in listed]
        assert listed and waited == sorted(waited, reverse=True), (stage, listed, waited)  # longest first

        ended = output.wait_for(re.compile(rf"{re.escape(order_no)} ended (\w+)(, signed for by [^,]+)?"), 180)
        assert ended[1] == "COMPLETED" and ended[2], output.text()[-2000:]
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
