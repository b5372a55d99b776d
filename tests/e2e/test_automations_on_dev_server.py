"""Automations on the embedded stack (real dev server, worker process, simulator's mail sink), as a newcomer uses
them from the command line: add a rule, dry run it, enable it, and get the mail after the next dispatch — with
nothing restarted. And a scheduled rule as a real Temporal Schedule, in its time zone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.embedded_stack import embedded_stack, wait_status
from tests.support.orders import make_order

ROOT = Path(__file__).resolve().parents[2]
ORDERFLOW = str(Path(sys.executable).parent / "orderflow")
TEMPORAL = str(Path(sys.executable).parent / "temporal")

TAOBAO_RULE = """\
automations:
  - name: taobao-dispatched-mail-ops
    description: Taobao orders on their way - ops hear of it by e-mail.
    enabled: false
    owner: olga
    trigger: {type: status_changed, to: DISPATCHED}
    if: channel == "taobao"
    then:
      - notify:
          to: role:ops
          channels: [email]
          subject: "Taobao {order_no} dispatched"
          text: "{订单号} for {客户姓名} left with {carrier}, tracking number {物流单号}."
"""

PICKING_DIGEST = """\
automations:
  - name: picking-digest
    owner: olga
    trigger:
      type: schedule
      cron: "0 20 * * *"
      time_zone: Asia/Shanghai
      find: {status: [PICKING]}
    if: count > 0
    then:
      - notify: {to: role:ops, channels: [internal], subject: "{count} orders in picking", text: "{orders}"}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from embedded_stack(tmp_path_factory)


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    done = subprocess.run(
        [ORDERFLOW, *args], cwd=ROOT, env=env, capture_output=True, text=True, input=stdin, timeout=60
    )
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return json.loads(done.stdout)


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout} s")


def test_a_newcomer_adds_a_rule_dry_runs_it_enables_it_and_gets_the_mail(stack: dict[str, str], tmp_path: Path) -> None:
    env = stack
    ok(env, "seed")
    # The worker stored the default rules when it started.
    defaults = {row["name"] for row in ok(env, "automations", "list")}
    assert {"new-order-tell-sales-rep", "big-order-director-todo", "overdue-approvals-digest"} <= defaults

    rule_file = tmp_path / "taobao.yaml"
    rule_file.write_text(TAOBAO_RULE, encoding="utf-8")
    assert ok(env, "automations", "check", str(rule_file))["valid"] is True
    [saved] = ok(env, "automations", "load", str(rule_file), "--by", "olga")
    assert (saved["name"], saved["version"], saved["enabled"]) == ("taobao-dispatched-mail-ops", 1, False)

    order = make_order("E2E-TB-1", [("SKU-1016", 2, "39.00")], channel="taobao")
    ok(env, "submit", "-", stdin=order.model_dump_json())
    wait_status(env, "E2E-TB-1", "PICKING")
    dry = ok(env, "automations", "test", "taobao-dispatched-mail-ops", "--order", "E2E-TB-1")
    assert dry["fires"] is True and dry["branch"] == 1
    [mail] = dry["actions"]
    assert mail["subject"] == "Taobao E2E-TB-1 dispatched" and mail["channels"] == ["email"]
    assert mail["text"].startswith("E2E-TB-1 for ")
    assert ok(env, "automations", "runs", "--rule", "taobao-dispatched-mail-ops") == []  # the dry run did nothing

    enabled = ok(env, "automations", "enable", "taobao-dispatched-mail-ops", "--by", "olga")
    assert (enabled["version"], enabled["enabled"]) == (2, True)
    ok(env, "dispatch", "E2E-TB-1", "--warehouse", "WH-SH", "--carrier", "sim", "--tracking-no", "TB-E2E-1")

    sim = f"http://127.0.0.1:{env['ORDERFLOW_SIMULATOR_PORT']}"

    def ops_mail() -> list[dict[str, Any]]:
        mails = httpx.get(f"{sim}/mail/messages", timeout=10).json()
        return [m for m in mails if m["subject"] == "Taobao E2E-TB-1 dispatched"]

    [arrived] = wait_for(ops_mail, "mail to ops")
    assert arrived["to"] == ["olga@staff.orderflow.test"]
    assert "tracking number TB-E2E-1" in arrived["text"]
    [run] = ok(env, "automations", "runs", "--rule", "taobao-dispatched-mail-ops")
    assert (run["version"], run["subject"], run["state"]) == (2, "E2E-TB-1", "completed")
    logged = ok(env, "automations", "run", run["run_id"])
    assert [(s["action"], s["state"]) for s in logged["steps"]] == [("notify", "done")]
    assert logged["facts"]["channel"] == "taobao" and logged["facts"]["tracking_no"] == "TB-E2E-1"

    # The default rule told the sales rep about the order the moment it came in.
    [told] = ok(env, "automations", "runs", "--rule", "new-order-tell-sales-rep", "--subject", "E2E-TB-1")
    assert told["state"] == "completed"


def test_a_scheduled_rule_is_a_temporal_schedule_in_its_time_zone(stack: dict[str, str], tmp_path: Path) -> None:
    env = stack
    ok(env, "seed")
    rule_file = tmp_path / "digest.yaml"
    rule_file.write_text(PICKING_DIGEST, encoding="utf-8")
    ok(env, "automations", "load", str(rule_file))
    order = make_order("E2E-DIGEST-1", [("SKU-1016", 1, "39.00")])
    ok(env, "submit", "-", stdin=order.model_dump_json())
    wait_status(env, "E2E-DIGEST-1", "PICKING")

    describe = [TEMPORAL, "schedule", "describe", "--schedule-id", "automation-picking-digest",
                "--address", env["TEMPORAL_ADDRESS"], "--output", "json"]  # fmt: skip

    def described() -> dict[str, Any] | None:
        done = subprocess.run(describe, capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout) if done.returncode == 0 else None

    # The worker's dispatcher saw the new rule and made its schedule (no restart).
    schedule = wait_for(described, "schedule automation-picking-digest")
    upcoming = [datetime.fromisoformat(at) for at in schedule["info"]["futureActionTimes"]]
    assert upcoming and all((at.hour, at.minute) == (12, 0) for at in upcoming)  # 20:00 in Shanghai is 12:00 UTC

    trigger = [TEMPORAL, "schedule", "trigger", "--schedule-id", "automation-picking-digest",
               "--address", env["TEMPORAL_ADDRESS"]]  # fmt: skip
    assert subprocess.run(trigger, capture_output=True, text=True, timeout=60).returncode == 0

    def digest_run() -> list[dict[str, Any]]:
        found = ok(env, "automations", "runs", "--rule", "picking-digest")
        return [run for run in found if run["state"] == "completed"]

    [run] = wait_for(digest_run, "digest run")
    logged = ok(env, "automations", "run", run["run_id"])
    assert "E2E-DIGEST-1" in logged["facts"]["order_nos"]
    assert logged["facts"]["count"] >= 1

    ok(env, "automations", "disable", "picking-digest")
    wait_for(lambda: described() is None, "the disabled rule's schedule to go")
