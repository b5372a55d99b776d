"""Helpers of the browser tests: the `orderflow` command line against the stack, and signing in to the console."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import BrowserContext, Page, ViewportSize, expect

from tests.support.embedded_stack import read_order, wait_status
from tests.support.orders import make_order

__all__ = ["read_order", "wait_status"]  # the browser tests' waits, with the helpers below

ROOT = Path(__file__).resolve().parents[2]
ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
PHONE: ViewportSize = {"width": 390, "height": 844}


def screenshots(tmp_path: Path) -> Path:
    """Where the README's screenshots go: docs/screenshots with `make screenshots`, else the test's own folder."""
    folder = ROOT / "docs" / "screenshots" if os.environ.get("ORDERFLOW_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [ORDERFLOW, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, input=stdin, timeout=60)


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    done = run_cli(env, *args, stdin=stdin)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return json.loads(done.stdout)


def console_url(stack: dict[str, str]) -> str:
    return f"http://127.0.0.1:{stack['ORDERFLOW_API_PORT']}/console"


def submit_big_order(stack: dict[str, str], order_no: str, sales_rep: str = "alice") -> None:
    """An order over 10,000: finance must approve it (the default rules)."""
    order = make_order(order_no, [("SKU-1018", 1, "12999.00")]).model_copy(update={"sales_rep": sales_rep})
    cli(stack, "submit", "-", stdin=order.model_dump_json())


def submit_small_order(stack: dict[str, str], order_no: str) -> None:
    """Auto-approved (under every approval rule): straight to picking."""
    cli(stack, "submit", "-", stdin=make_order(order_no, [("SKU-1001", 2, "199.00")]).model_dump_json())


def mails(stack: dict[str, str], to: str, subject_has: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The mails the stack's SMTP sink received for `to` whose subject has `subject_has` (waits for one)."""
    url = f"http://127.0.0.1:{stack['ORDERFLOW_SIMULATOR_PORT']}/mail/messages"
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in httpx.get(url, timeout=5).json() if to in m["to"] and subject_has in m["subject"]]
        if found or time.monotonic() > deadline:
            assert found, f"no mail to {to} about {subject_has!r}"
            return found
        time.sleep(0.3)


def link_in(mail: dict[str, Any], path: str) -> str:
    """The first link to `path` (e.g. /console/approve/) in a mail's text."""
    found = re.search(rf"https?://\S+{re.escape(path)}\S+", mail["text"])
    assert found is not None, mail["text"]
    return found[0]


async def signed_in_page(context: BrowserContext, url: str, user: str, password: str) -> Page:
    page = await context.new_page()
    await page.goto(url)
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.get_by_label(re.compile("User name|用户名")).fill(user)
    await page.get_by_label(re.compile("^(Password|密码)$")).fill(password)
    await page.get_by_role("button", name=re.compile("Sign in|登录")).click()
    await expect(page).not_to_have_url(re.compile(r"/console/sign-in"))
    return page
