"""The carrier simulator as a real HTTP server, driven through SimCarrierClient."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from core.config import get_settings
from dev.simulator.carriers import STEPS, ParcelBook, signer_for
from integrations.carriers.base import CarrierError, UnknownParcel
from integrations.carriers.registry import carrier_client
from integrations.carriers.sim import SimCarrierClient
from models.status import TrackingStatus
from tests.support.simulator import running_simulator

pytestmark = pytest.mark.timeout(30)

ORDERED = [status for status, _, _ in STEPS]


@pytest.mark.asyncio
async def test_query_mode_reaches_delivered_with_signer_after_five_queries() -> None:
    with running_simulator(advance="query") as base_url:
        async with httpx.AsyncClient(timeout=5) as http:
            client = SimCarrierClient(http, base_url)
            seen = [(await client.track("SIM0001")).status for _ in range(5)]
            assert seen == ORDERED
            final = await client.track("SIM0001")  # stays delivered, same signer
    assert final.status is TrackingStatus.DELIVERED
    assert final.carrier == "sim" and final.tracking_no == "SIM0001"
    assert final.signed_by == signer_for("SIM0001")
    assert final.signed_at is not None and final.signed_at.tzinfo is not None
    assert [e.status for e in final.events] == ORDERED
    assert all(e.location and e.description for e in final.events)


@pytest.mark.asyncio
async def test_time_mode_advances_with_wall_clock() -> None:
    with running_simulator(step_seconds=0.05, advance="time") as base_url:
        async with httpx.AsyncClient(timeout=5) as http:
            client = SimCarrierClient(http, base_url)
            first = await client.track("SIM0002")
            assert first.status is TrackingStatus.INFO_RECEIVED
            assert first.signed_by is None
            snapshot = first
            for _ in range(100):
                await asyncio.sleep(0.05)
                snapshot = await client.track("SIM0002")
                if snapshot.status is TrackingStatus.DELIVERED:
                    break
    assert snapshot.status is TrackingStatus.DELIVERED
    assert snapshot.signed_by == signer_for("SIM0002")
    times = [e.at for e in snapshot.events]
    assert times == sorted(times)
    assert snapshot.signed_at == times[-1]


@pytest.mark.asyncio
async def test_pre_registration_and_unknown_route() -> None:
    with running_simulator(advance="query") as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            created = await http.post("/sim/parcels", json={"tracking_no": "SIM0003"})
            again = await http.post("/sim/parcels", json={"tracking_no": "SIM0003"})
            assert (created.status_code, again.status_code) == (201, 200)
            assert created.json()["status"] == "INFO_RECEIVED"
            assert (await http.get("/no/such/route")).status_code == 404
            assert (await http.get("/healthz")).json()["advance"] == "query"
            # A wrong base URL lands on a 404: the client reports the parcel as unknown.
            with pytest.raises(UnknownParcel):
                await SimCarrierClient(http, base_url + "/wrong").track("SIM0003")


@pytest.mark.asyncio
async def test_client_raises_carrier_error_when_server_is_down() -> None:
    with running_simulator() as base_url:
        pass  # stopped on exit: the port no longer answers
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(CarrierError):
            await SimCarrierClient(http, base_url).track("SIM0004")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body"),
    [(503, b"{}"), (200, b"not json"), (200, b'{"carrier": "sim", "status": "LOST"}')],
)
async def test_client_raises_carrier_error_on_5xx_and_garbage(status: int, body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(CarrierError) as info:
            await SimCarrierClient(http, "http://sim.invalid").track("SIM0005")
    assert not isinstance(info.value, UnknownParcel)


def test_time_mode_stamps_each_step_when_it_was_due() -> None:
    start = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    now = [start]
    book = ParcelBook(step_seconds=60, advance="time", clock=lambda: now[0])
    assert book.query("T1").status is TrackingStatus.INFO_RECEIVED
    now[0] = start + timedelta(seconds=150)  # two and a half steps later
    view = book.query("T1")
    assert view.status is TrackingStatus.IN_TRANSIT
    assert [e.at for e in view.events] == [start + timedelta(seconds=60 * i) for i in range(3)]
    now[0] = start + timedelta(hours=5)
    assert book.query("T1").status is TrackingStatus.DELIVERED


def test_signer_is_deterministic() -> None:
    assert signer_for("SF123") == signer_for("SF123")
    assert len({signer_for(f"SF{i}") for i in range(50)}) > 1


@pytest.mark.asyncio
async def test_registry() -> None:
    settings = get_settings().model_copy(update={"carrier_sim_url": "http://127.0.0.1:1"})
    async with httpx.AsyncClient() as http:
        client = carrier_client("sim", http, settings)
        assert client.code == "sim"
        with pytest.raises(ValueError, match="unknown carrier code 'ups'"):
            carrier_client("ups", http, settings)
