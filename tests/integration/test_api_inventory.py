"""The HTTP API's inventory slice, in-process (ASGI) against the real database and time-skipping server."""

from __future__ import annotations

import time
import uuid

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from core.config import Settings
from core.db import unit_of_work
from models.status import OrderStatus, Role
from services import order_commands
from services.users import add_user
from tests.support.cleanup import StartedOrders
from tests.support.orders import make_order
from tests.support.waiting import wait_for_status
from worker import running_worker


def token(engine: Engine, role: Role) -> dict[str, str]:
    with unit_of_work(engine) as session:
        secret = add_user(session, f"{role.value}-{uuid.uuid4().hex[:6]}", role)
    return {"Authorization": f"Bearer {secret}"}


async def test_inventory_products_customers_are_served(api: httpx.AsyncClient, engine: Engine) -> None:
    warehouse, sales = token(engine, Role.WAREHOUSE), token(engine, Role.SALES)
    view = (await api.get("/inventory/SKU-1024", headers=warehouse)).json()
    assert [w["warehouse"] for w in view["warehouses"]] == ["WH-BJ", "WH-GZ", "WH-SH"]
    assert (view["on_hand"], view["reserved"], view["available"], view["incoming"]) == (10, 0, 10, 0)
    unknown = await api.get("/inventory/SKU-NOPE", headers=warehouse)
    assert unknown.status_code == 404 and "unknown SKU" in unknown.json()["detail"]
    assert len((await api.get("/products", headers=warehouse)).json()) >= 20
    assert {c["customer_id"] for c in (await api.get("/customers", headers=sales)).json()} >= {"C-1005", "C-2001"}


async def test_stock_and_customers_are_not_open_to_anyone(api: httpx.AsyncClient, engine: Engine) -> None:
    for path in ("/inventory/SKU-1024", "/products", "/customers"):
        assert (await api.get(path)).status_code == 401, path
    # Credit limits and exposure are not the warehouse's business.
    assert (await api.get("/customers", headers=token(engine, Role.WAREHOUSE))).status_code == 403
    for role in (Role.SALES, Role.FINANCE, Role.FINANCE_DIRECTOR, Role.OPS, Role.ADMIN):
        assert (await api.get("/customers", headers=token(engine, role))).status_code == 200, role


async def test_receipts_need_a_warehouse_token_and_valid_input(api: httpx.AsyncClient, engine: Engine) -> None:
    body = {"sku": "SKU-1024", "warehouse": "WH-GZ", "qty": 5, "lot": "L-API-1"}
    assert (await api.post("/inventory/receipts", json=body)).status_code == 401
    forged = {"Authorization": "Bearer of_not-a-real-token"}
    assert (await api.post("/inventory/receipts", json=body, headers=forged)).status_code == 401
    assert (await api.post("/inventory/receipts", json=body, headers=token(engine, Role.SALES))).status_code == 403
    warehouse = token(engine, Role.WAREHOUSE)
    bad = await api.post("/inventory/receipts", json={**body, "qty": 0, "lot": ""}, headers=warehouse)
    assert bad.status_code == 422 and {e["loc"][-1] for e in bad.json()["detail"]} == {"qty", "lot"}
    unknown = await api.post("/inventory/receipts", json={**body, "warehouse": "WH-X"}, headers=warehouse)
    assert unknown.status_code == 422 and "unknown warehouse" in unknown.json()["detail"]
    assert (await api.get("/inventory/SKU-1024", headers=warehouse)).json()["on_hand"] == 10  # refusals changed nothing


async def test_a_receipt_wakes_the_backordered_order(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    number = f"T-API-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, engine, settings, task_queue):
        handle = await orders.start(make_order(number, [("SKU-1024", 14, "299.00")]), task_queue)
        await wait_for_status(handle, OrderStatus.BACKORDERED)
        answer = await api.post(
            "/inventory/receipts",
            json={"sku": "SKU-1024", "warehouse": "WH-GZ", "qty": 4, "lot": "L-API-2"},
            headers=token(engine, Role.WAREHOUSE),
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["backordered_orders"] == [number]
        wake_up = client.get_workflow_handle(answer.json()["woken_by"], result_type=list[str])
        assert await wake_up.result() == [number]  # served when its turn came
        await wait_for_status(handle, OrderStatus.PICKING)


async def test_a_receipt_answers_at_once_and_the_waiting_orders_are_woken_oldest_first_after(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str, orders: StartedOrders
) -> None:
    numbers = [f"T-WAKE-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    async with running_worker(client, engine, settings, task_queue, sticky=False):
        handles = []
        for number in numbers:  # 10 on hand; each wants 11: after 4 more, only the oldest fits
            handles.append(await orders.start(make_order(number, [("SKU-1024", 11, "299.00")]), task_queue))
        for handle in handles:
            await wait_for_status(handle, OrderStatus.BACKORDERED)
    # No worker now: before, the receipt waited ~10 s per order for a re-check that could not come.
    started = time.monotonic()
    answer = await api.post(
        "/inventory/receipts",
        json={"sku": "SKU-1024", "warehouse": "WH-GZ", "qty": 4, "lot": "L-WAKE-1"},
        headers=token(engine, Role.WAREHOUSE),
    )
    assert answer.status_code == 201, answer.text
    assert time.monotonic() - started < 5
    assert answer.json()["backordered_orders"] == numbers
    async with running_worker(client, engine, settings, task_queue):  # the wake-up waited for a worker
        wake_up = client.get_workflow_handle(answer.json()["woken_by"], result_type=list[str])
        assert await wake_up.result() == numbers[:1]  # 14 units: the oldest order takes 11, the others still wait
        await wait_for_status(handles[0], OrderStatus.PICKING)
        for handle in handles:
            await order_commands.cancel(client, handle.id.removeprefix("order-"), reason="test over")


async def test_a_retried_receipt_books_once(api: httpx.AsyncClient, engine: Engine) -> None:
    warehouse = {**token(engine, Role.WAREHOUSE), "Idempotency-Key": "DN-2026-0042"}
    body = {"sku": "SKU-1024", "warehouse": "WH-GZ", "qty": 40, "lot": "L-DN-42"}
    first = await api.post("/inventory/receipts", json=body, headers=warehouse)
    again = await api.post("/inventory/receipts", json=body, headers=warehouse)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["duplicate"] and again.json()["receipt_id"] == first.json()["receipt_id"]
    assert (await api.get("/inventory/SKU-1024", headers=warehouse)).json()["on_hand"] == 10 + 40  # booked once
    other = await api.post("/inventory/receipts", json={**body, "qty": 41}, headers=warehouse)
    assert other.status_code == 409 and "other content" in other.json()["detail"]
