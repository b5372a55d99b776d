"""The browser tests share one embedded stack (`python -m dev.stack up`) and its seeded demo world, stopped when
they are done (a stack left running would load the 2-core machine for every later test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.browser import launch_chromium
from tests.support.console import cli
from tests.support.embedded_stack import embedded_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # Refunds over 100.00 wait for finance's decision: the finance test approves one in the page.
    yield from embedded_stack(tmp_path_factory, ORDERFLOW_REFUND_APPROVAL_OVER="100.00")


@pytest.fixture(scope="package")
def seeded(stack: dict[str, str]) -> dict[str, Any]:
    report: dict[str, Any] = cli(stack, "seed")
    assert report["passwords"].keys() >= {"fiona", "alice", "bob", "wang"}
    return report


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        found = await launch_chromium(playwright)
        try:
            yield found
        finally:
            await found.close()
