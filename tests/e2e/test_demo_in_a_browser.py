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
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.support.browser import launch_chromium
from tests.support.console import PHONE, signed_in_page
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


def test_a_newcomer_approves_the_demos_order_on_a_phone_and_the_demo_takes_it_to_signed_receipt(
    stack: dict[str, str],
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

        ended = output.wait_for(re.compile(rf"{re.escape(order_no)} ended (\w+)(, signed for by [^,]+)?"), 180)
        assert ended[1] == "COMPLETED" and ended[2], output.text()[-2000:]
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
