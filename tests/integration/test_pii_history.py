"""Customer data never reaches Temporal in plain text: every payload is AES-GCM encrypted by the client's and
worker's codec (core/codec.py); an operator with the key reads it through the codec endpoints."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from core.config import Settings
from core.db import unit_of_work
from models.status import OrderStatus, Role
from services.users import add_user
from tests.conftest import make_settings
from tests.support.orders import SHANGHAI, make_order
from tests.support.waiting import wait_for_status
from worker import running_worker
from workflows.contract import order_workflow_id

NAME, PHONE, STREET = "欧阳娜娜", "13912345678", "静安区南京西路 1266 号恒隆广场 52 楼"


@pytest.fixture
def settings(tmp_path: Path, simulator_url: str, task_queue: str) -> Settings:
    return make_settings(tmp_path, simulator_url, task_queue=task_queue)


async def test_history_on_the_server_holds_no_plaintext_pii_and_the_codec_endpoint_reads_it(
    api: httpx.AsyncClient, engine: Engine, client: Client, settings: Settings, task_queue: str
) -> None:
    number = f"T-PII-{uuid.uuid4().hex[:8]}"
    ship_to = {**SHANGHAI, "name": NAME, "phone": PHONE, "address": STREET}
    rep = f"sales-{uuid.uuid4().hex[:6]}"
    order = make_order(number, ship_to=ship_to, sales_rep=rep).model_dump(mode="json")
    with unit_of_work(engine) as session:
        token = add_user(session, rep, Role.SALES)
        ops = add_user(session, f"ops-{uuid.uuid4().hex[:6]}", Role.OPS)
    headers = {"Authorization": f"Bearer {token}"}
    async with running_worker(client, engine, settings, task_queue):
        assert (await api.post("/orders", json=order, headers=headers)).status_code == 202
        handle = client.get_workflow_handle(order_workflow_id(number))
        await wait_for_status(handle, OrderStatus.PICKING)
        cancelled = await api.post(f"/orders/{number}/cancel", json={"reason": "pii test"}, headers=headers)
        assert cancelled.status_code == 200  # the rep's own order
        ops_headers = {"Authorization": f"Bearer {ops}"}
        await handle.result()

    history = await handle.fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in (NAME, PHONE, STREET):
        assert secret.encode() not in raw, f"{secret} is in the history in plain text"
    description = await handle.describe()
    attributes = str(description.raw_description.workflow_execution_info.search_attributes)
    assert PHONE not in attributes and NAME not in attributes

    # The control: the first event's input does hold them, encrypted; the codec endpoint decodes it.
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encoding"] == b"binary/encrypted"
    wire = {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in started.metadata.items()},
                "data": base64.b64encode(started.data).decode(),
            }
        ]
    }
    assert (await api.post("/codec/decode", json=wire, headers={"X-Namespace": "default"})).status_code == 401
    decoded = await api.post("/codec/decode", json=wire, headers={"X-Namespace": "default", **ops_headers})
    assert decoded.status_code == 200, decoded.text
    plain = Payload(data=base64.b64decode(decoded.json()["payloads"][0]["data"]))
    assert PHONE.encode() in plain.data and STREET.encode() in plain.data
