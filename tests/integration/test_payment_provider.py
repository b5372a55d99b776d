"""Refunds through HttpRefundProvider against the real simulated payment provider (the carrier simulator's /pay
router under uvicorn, on loopback): what the provider stored is the evidence for "refunded once"."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.config import Settings
from dev.simulator.payment_provider import SIM_PAY_KEY
from integrations.payments.base import (
    RefundProvider,
    RefundRejected,
    RefundRequest,
    RefundResult,
    RefundUnavailable,
)
from integrations.payments.provider import HttpRefundProvider, provider_from_settings


@pytest.fixture
def pay_url(simulator_url: str) -> str:
    return f"{simulator_url}/pay"


@pytest.fixture
async def http(pay_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client
        # The simulator is the session's: leave no fault or refusal behind for the next test.
        (await client.delete(f"{pay_url}/faults")).raise_for_status()
        (await client.delete(f"{pay_url}/refusals")).raise_for_status()


@pytest.fixture
def provider(pay_url: str, http: httpx.AsyncClient) -> RefundProvider:
    return HttpRefundProvider(pay_url, SIM_PAY_KEY, http)


def refund_request(amount: str = "99.90", **overrides: Any) -> RefundRequest:
    unique = uuid.uuid4().hex[:10].upper()
    values: dict[str, Any] = {
        "key": f"refund:SO-{unique}",
        "payment_reference": f"pay_{unique}",
        "amount": Decimal(amount),
        "currency": "CNY",
        "reason": "order cancelled before dispatch",
        **overrides,
    }
    return RefundRequest(**values)


async def stored(http: httpx.AsyncClient, pay_url: str, key: str) -> list[dict[str, Any]]:
    """The refunds the provider holds under this idempotency key, as it lists them (raw JSON)."""
    answer = await http.get(f"{pay_url}/refunds")
    answer.raise_for_status()
    return [item for item in answer.json()["items"] if item["idempotency_key"] == key]


async def test_a_refund_is_made_and_its_decimal_amount_round_trips_exactly(
    provider: RefundProvider, http: httpx.AsyncClient, pay_url: str
) -> None:
    request = refund_request("1234.56")
    before = datetime.now(UTC)
    result = await provider.refund(request)

    assert isinstance(result, RefundResult)
    assert result.status == "succeeded" and result.provider_ref.startswith("re_")
    assert isinstance(result.amount, Decimal) and str(result.amount) == "1234.56"
    assert (result.amount, result.currency) == (Decimal("1234.56"), "CNY")
    assert result.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= result.created_at <= datetime.now(UTC) + timedelta(seconds=5)
    [item] = await stored(http, pay_url, request.key)
    # On the wire the amount is a decimal string, never a JSON number.
    assert item["amount"] == "1234.56"
    assert (item["id"], item["payment"], item["reason"]) == (
        result.provider_ref,
        request.payment_reference,
        request.reason,
    )
    assert item["submissions"] == 1


async def test_the_same_key_twice_refunds_once(provider: RefundProvider, http: httpx.AsyncClient, pay_url: str) -> None:
    request = refund_request("10.05")
    first = await provider.refund(request)
    again = await provider.refund(request)

    assert again == first  # the first refund, the same provider ref and time
    [item] = await stored(http, pay_url, request.key)
    assert item["submissions"] == 2 and item["id"] == first.provider_ref
    listed = (await http.get(f"{pay_url}/refunds")).json()["items"]
    assert [row["id"] for row in listed if row["payment"] == request.payment_reference] == [first.provider_ref]


async def test_the_same_key_for_another_refund_is_rejected(
    provider: RefundProvider, http: httpx.AsyncClient, pay_url: str
) -> None:
    request = refund_request("10.00")
    first = await provider.refund(request)
    with pytest.raises(RefundRejected, match="400.*same parameters"):
        await provider.refund(refund_request("20.00", key=request.key, payment_reference=request.payment_reference))
    [item] = await stored(http, pay_url, request.key)
    assert (item["id"], item["amount"], item["submissions"]) == (first.provider_ref, "10.00", 1)


async def test_a_provider_fault_is_unavailable_until_it_is_used_up(
    provider: RefundProvider, http: httpx.AsyncClient, pay_url: str
) -> None:
    (await http.post(f"{pay_url}/faults", json={"times": 2, "status": 503})).raise_for_status()
    request = refund_request("5.00")
    for _ in range(2):
        with pytest.raises(RefundUnavailable, match="503"):
            await provider.refund(request)
        assert await stored(http, pay_url, request.key) == []  # a fault stores nothing

    result = await provider.refund(request)
    assert result.status == "succeeded"
    [item] = await stored(http, pay_url, request.key)
    assert item["id"] == result.provider_ref and item["submissions"] == 1


async def test_a_refused_payment_is_rejected_with_the_providers_message(
    provider: RefundProvider, http: httpx.AsyncClient, pay_url: str
) -> None:
    request = refund_request()
    message = f"payment {request.payment_reference} is disputed; it cannot be refunded"
    refusal = {"payment": request.payment_reference, "message": message}
    (await http.post(f"{pay_url}/refusals", json=refusal)).raise_for_status()

    with pytest.raises(RefundRejected, match="402") as refused:
        await provider.refund(request)
    assert message in str(refused.value)
    assert await stored(http, pay_url, request.key) == []
    # Another payment is not affected.
    assert (await provider.refund(refund_request())).status == "succeeded"


async def test_a_wrong_key_is_rejected(http: httpx.AsyncClient, pay_url: str) -> None:
    request = refund_request()
    with pytest.raises(RefundRejected, match="401.*Invalid API Key"):
        await HttpRefundProvider(pay_url, "sim-wrong-key", http).refund(request)
    assert await stored(http, pay_url, request.key) == []


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_refused_connection_is_unavailable(http: httpx.AsyncClient, closed_port: int) -> None:
    provider = HttpRefundProvider(f"http://127.0.0.1:{closed_port}/pay", SIM_PAY_KEY, http)
    with pytest.raises(RefundUnavailable, match="unreachable"):
        await provider.refund(refund_request())


async def test_an_amount_no_provider_takes_is_rejected_before_it_is_sent(
    provider: RefundProvider, http: httpx.AsyncClient, pay_url: str
) -> None:
    for amount, why in (("12.345", "2 decimal places"), ("0", "greater than 0"), ("-1.00", "greater than 0")):
        request = refund_request(amount)
        with pytest.raises(RefundRejected, match=why):
            await provider.refund(request)
        assert await stored(http, pay_url, request.key) == []


async def test_the_simulator_refuses_what_the_protocol_does_not_allow(http: httpx.AsyncClient, pay_url: str) -> None:
    auth = {"Authorization": f"Bearer {SIM_PAY_KEY}"}
    body = {"payment": f"pay_{uuid.uuid4().hex}", "amount": "1.00", "currency": "CNY", "reason": "test"}
    no_key = await http.post(f"{pay_url}/refunds", json=body, headers=auth)
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["error"]["message"]
    key = {**auth, "Idempotency-Key": f"refund:{uuid.uuid4().hex}"}
    as_number = await http.post(f"{pay_url}/refunds", json={**body, "amount": 1.0}, headers=key)
    assert as_number.status_code == 400 and "decimal string" in as_number.json()["error"]["message"]
    created = await http.post(f"{pay_url}/refunds", json=body, headers=key)
    assert created.status_code == 201 and created.json()["amount"] == "1.00"
    replayed = await http.post(f"{pay_url}/refunds", json=body, headers=key)
    assert replayed.status_code == 200 and replayed.json() == created.json()


def answering(status: int, body: bytes) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(status, content=body)))


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (201, b'{"id": "re_1", "status": "succeeded"}', RefundUnavailable),  # not a whole refund
        (201, b"<html>proxy</html>", RefundUnavailable),
        (502, b"Bad Gateway", RefundUnavailable),
        (429, b'{"error": {"message": "slow down"}}', RefundUnavailable),
        (404, b"Not Found", RefundRejected),
    ],
)
async def test_answers_we_cannot_use(status: int, body: bytes, error: type[Exception]) -> None:
    async with answering(status, body) as client:
        with pytest.raises(error):
            await HttpRefundProvider("http://provider.example/pay", "k", client).refund(refund_request())


async def test_a_refund_of_something_else_under_our_key_is_rejected() -> None:
    request = refund_request("10.00")
    other = (
        b'{"id": "re_other", "status": "succeeded", "payment": "' + request.payment_reference.encode() + b'", '
        b'"amount": "1.00", "currency": "CNY", "created": "2025-01-31T08:00:00Z"}'
    )
    async with answering(200, other) as client:
        with pytest.raises(RefundRejected, match="re_other"):
            await HttpRefundProvider("http://provider.example/pay", "k", client).refund(request)


async def test_settings_point_at_the_simulators_provider_unless_told_otherwise(
    simulator_url: str, http: httpx.AsyncClient
) -> None:
    # Unset, the URL follows the simulator (its port, or carrier_sim_url).
    stack = Settings.model_validate({"simulator_port": 9191, "carrier_sim_url": "", "payment_provider_url": ""})
    assert stack.payment_provider_url == "http://127.0.0.1:9191/pay"
    settings = Settings.model_validate({"carrier_sim_url": simulator_url, "payment_provider_url": ""})
    provider = provider_from_settings(settings, http)
    assert provider.url == f"{simulator_url}/pay/refunds"
    assert (await provider.refund(refund_request())).status == "succeeded"
    # The simulator's key is refused for a real provider.
    with pytest.raises(ValueError, match="ORDERFLOW_PAYMENT_PROVIDER_KEY"):
        Settings.model_validate(
            {"payment_provider_url": "https://api.payments.example", "payment_provider_key": SIM_PAY_KEY}
        )
