"""Debian's chromium driven by Playwright: never a browser download (`playwright install` needs the internet)."""

from __future__ import annotations

import shutil

from playwright.async_api import Browser, Playwright

# Without these Chromium keeps reaching for Google's services, which this machine's closed network refuses.
QUIET_FLAGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-gpu",
]


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("no chromium on PATH: install Debian's package (apt-get install chromium), as .ci/run does")
    return found


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=QUIET_FLAGS)
