"""The embedded stack as a user runs it: `python -m dev.stack up` (real dev server, worker and carrier
simulator as processes), then the `orderflow` command line for every step of an order."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.embedded_stack import embedded_stack, wait_status
from tests.support.orders import SHANGHAI, make_order

ROOT = Path(__file__).resolve().parents[2]
ORDERFLOW = str(Path(sys.executable).parent / "orderflow")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield from embedded_stack(tmp_path_factory)


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORDERFLOW, *args], cwd=ROOT, env=env, capture_output=True, text=True, input=stdin, timeout=60
    )


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    done = cli(env, *args, stdin=stdin)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return json.loads(done.stdout)


def refused(env: dict[str, str], *args: str) -> str:
    done = cli(env, *args)
    assert done.returncode != 0, f"{args} should have been refused: {done.stdout}"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one clear line
    return lines[0]


def test_order_through_the_cli(stack: dict[str, str], tmp_path: Path) -> None:
    env = stack
    seeded = ok(env, "seed")
    assert set(seeded["tokens"]) >= {"alice", "fiona", "derek", "wang"}
    order = make_order("E2E-0001", [("SKU-1018", 1, "12999.00")])  # > 10,000: finance approves
    order_file = tmp_path / "order.json"
    order_file.write_text(order.model_dump_json(), encoding="utf-8")

    first = ok(env, "submit", str(order_file))
    assert first == {"order_no": "E2E-0001", "workflow_id": "order-E2E-0001", "status": "RECEIVED"}
    again = ok(env, "submit", "-", stdin=order.model_dump_json())  # the same order again: same answer
    assert again["workflow_id"] == first["workflow_id"]
    changed = order.model_copy(update={"sales_rep": "bob"})
    assert "different content" in refused_submit(env, changed.model_dump_json())

    wait_status(env, "E2E-0001", "AWAITING_APPROVAL")
    assert "own sales rep" in refused(env, "approve", "E2E-0001", "--as", "alice")
    assert "cannot decide" in refused(env, "approve", "E2E-0001", "--as", "wang")
    ok(env, "approve", "E2E-0001", "--as", "fiona", "--comment", "ok for key account")

    view = wait_status(env, "E2E-0001", "PICKING")
    [allocation] = view["allocations"]
    assert allocation["warehouse"] == "WH-SH" and allocation["qty"] == 1
    assert "awaits no dispatch" in refused(
        env, "dispatch", "E2E-0001", "--warehouse", "WH-GZ", "--carrier", "sim", "--tracking-no", "X1"
    )
    ok(env, "dispatch", "E2E-0001", "--warehouse", "WH-SH", "--carrier", "sim", "--tracking-no", "E2E1")
    too_late = refused(env, "cancel", "E2E-0001", "--reason", "too late")
    # In transit (or already delivered, the simulator is quick): either way the parcel has left.
    assert "can no longer be cancelled" in too_late or "is closed" in too_late, too_late

    done = wait_status(env, "E2E-0001", "COMPLETED")
    # --json goes wherever people put it: after the command's arguments as well as before the command.
    assert ok(env, "status", "E2E-0001", "--json") == ok(env, "--json", "status", "E2E-0001") == done
    [shipment] = done["shipments"]
    assert shipment["status"] == "DELIVERED" and shipment["signed_by"] and shipment["signed_at"]
    timeline = [step["status"] for step in done["timeline"]]
    assert timeline[0] == "RECEIVED" and timeline[-1] == "COMPLETED" and "DISPATCHED" in timeline
    approvals = done["approvals"]
    assert [a["by"] for a in approvals if "refused" not in a] == ["fiona"]
    assert {a["by"] for a in approvals if "refused" in a} == {"alice", "wang"}  # refusals are audited too

    # The customer heard about it: e-mail through the stack's mail sink, SMS through the gateway (relay ~1 s).
    sim = f"http://127.0.0.1:{env['ORDERFLOW_SIMULATOR_PORT']}"
    deadline = time.monotonic() + 30
    while True:
        mails = [m for m in httpx.get(f"{sim}/mail/messages", timeout=10).json() if "E2E-0001" in m["text"]]
        texts = [m for m in httpx.get(f"{sim}/sms/messages", timeout=10).json()["items"] if "E2E-0001" in m["body"]]
        kinds = {t["reference"].split(":")[1] for t in texts}
        if {"dispatched", "delivered"} <= kinds and any("signed" in m["text"] for m in mails):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert any("E2E1" in m["text"] for m in mails), mails  # the dispatch notice carries the tracking number
    assert any("signed" in m["text"] for m in mails), mails
    # Dispatched and delivered at least (out for delivery too, unless the parcel was delivered before the order
    # saw it on its way: the simulator is quick), each sent once.
    assert {"dispatched", "delivered"} <= {t["reference"].split(":")[1] for t in texts}, texts
    assert all(t["submissions"] == 1 for t in texts), texts

    api = f"http://127.0.0.1:{env['ORDERFLOW_API_PORT']}"
    wang = {"Authorization": f"Bearer {seeded['tokens']['wang']}"}
    assert httpx.get(f"{api}/inventory/SKU-1018", timeout=10).status_code == 401  # not without a token
    served = httpx.get(f"{api}/inventory/SKU-1018", headers=wang, timeout=10)  # the stack serves the API
    assert served.json()["reserved"] == 0

    # An operator reads the history: encrypted as stored, decoded through the API's codec endpoint.
    show = [str(Path(sys.executable).parent / "temporal"), "workflow", "show", "-w", "order-E2E-0001",
            "--output", "json", "--address", env["TEMPORAL_ADDRESS"]]  # fmt: skip
    stored = subprocess.run(show, capture_output=True, text=True, timeout=60)
    assert stored.returncode == 0, stored.stderr
    assert "binary/encrypted" in stored.stdout or "YmluYXJ5L2VuY3J5cHRlZA" in stored.stdout
    assert SHANGHAI["phone"] not in stored.stdout and SHANGHAI["address"] not in stored.stdout
    decoded = subprocess.run([*show, "--codec-endpoint", f"{api}/codec"], capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0, decoded.stderr
    [started] = json.loads(decoded.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    assert base64.b64decode(started["metadata"]["encoding"]) == b"json/plain"
    assert SHANGHAI["phone"] in base64.b64decode(started["data"]).decode()
    inventory = ok(env, "inventory", "SKU-1018")
    assert inventory["reserved"] == 0 and inventory["available"] == inventory["on_hand"]
    receipt = ok(env, "receive", "SKU-1018", "--warehouse", "WH-SH", "--qty", "5", "--lot", "L-E2E-1")
    assert receipt["qty"] == 5 and receipt["backordered_orders"] == []
    assert ok(env, "inventory", "SKU-1018")["on_hand"] == inventory["on_hand"] + 5
    assert "unknown warehouse" in refused(env, "receive", "SKU-1018", "--warehouse", "WH-X", "--qty", "1", "--lot", "L")
    assert isinstance(ok(env, "requisitions", "--all"), list)
    assert "unknown order" in refused(env, "status", "NOPE-1")
    assert "invalid input" in refused_submit(env, '{"order_no": "X"}')


def refused_submit(env: dict[str, str], payload: str) -> str:
    done = cli(env, "submit", "-", stdin=payload)
    assert done.returncode != 0
    return done.stderr.strip()


# --- the built wheel, installed as a user would -------------------------------------------------------------------


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [str(Path(sys.base_prefix) / "bin" / "python3"), "-m", "uv"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A fresh virtual environment with nothing but the built wheel (and its dependencies): its bin directory, and
    the files the wheel holds."""
    base = tmp_path_factory.mktemp("wheel")
    build = [*_uv(), "build", "--wheel", "--out-dir", str(base / "dist"), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    [wheel] = (base / "dist").glob("orderflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    venv = base / "venv"
    subprocess.run([*_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    install = [*_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=600)
    return venv / "bin", names


def test_the_built_wheel_holds_the_product_only_and_runs_against_the_stack(
    stack: dict[str, str], installed: tuple[Path, list[str]], tmp_path: Path
) -> None:
    bin_dir, names = installed
    rooms = {name.split("/")[0] for name in names if "/" in name and not name.startswith("orderflow-")}
    assert rooms == {"models", "domain", "rules", "core", "workflows", "integrations", "services", "activities",
                     "entrypoints"}  # fmt: skip
    assert {"starter.py", "worker.py"} <= set(names)  # and no dev/ (simulator, demo, seed, stack), tests/, bench/

    env = {key: value for key, value in stack.items() if key != "PYTHONPATH"}

    def installed_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        # Run from elsewhere: nothing of the source checkout is importable, only what the wheel installed.
        return subprocess.run(
            [str(bin_dir / "orderflow"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, input=stdin,
            timeout=60,
        )  # fmt: skip

    helped = installed_cli("--help")
    assert helped.returncode == 0 and "status" in helped.stdout, helped.stderr
    demo = installed_cli("demo")
    assert demo.returncode == 1 and "source checkout" in demo.stderr  # no demo world in the package
    ok(stack, "seed")  # the stack's demo world, from the checkout
    order = make_order("E2E-WHEEL-1", [("SKU-1016", 2, "39.00")])
    submitted = installed_cli("submit", "-", stdin=order.model_dump_json())
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["workflow_id"] == "order-E2E-WHEEL-1"
    deadline = time.monotonic() + 60
    while True:
        status = installed_cli("status", "E2E-WHEEL-1", "--json")
        assert status.returncode == 0, status.stderr
        view = json.loads(status.stdout)
        if view["status"] == "PICKING" or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert view["status"] == "PICKING" and view["allocations"], view  # the stack's worker took it this far
    cancelled = installed_cli("cancel", "E2E-WHEEL-1", "--reason", "wheel test over")
    assert cancelled.returncode == 0, cancelled.stderr
