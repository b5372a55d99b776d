"""The Kuaidi100-, 17TRACK- and AfterShip-style adapters: recorded sample payloads (tests/unit/samples/carriers,
written from the public API documentation), webhook parsing and signatures, and the real carrier simulator
(query mode) including its per-parcel faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from core.config import Settings
from dev.simulator.carriers import STEPS, FaultBook, FaultSpec, SimCredentials, signer_for
from integrations.carriers import aftership, kuaidi100, track17
from integrations.carriers.aftership import AfterShipClient
from integrations.carriers.base import CarrierClient, CarrierError, CarrierUnavailable, UnknownParcel
from integrations.carriers.kuaidi100 import Kuaidi100Client
from integrations.carriers.registry import KNOWN_CARRIERS, carrier_base_url, carrier_client
from integrations.carriers.track17 import Track17Client
from models.status import TrackingStatus as S
from models.tracking import TrackingSnapshot
from tests.support.simulator import running_simulator

pytestmark = pytest.mark.timeout(60)

SAMPLES = Path(__file__).parent / "samples" / "carriers"
ORDERED = [status for status, _, _ in STEPS]
AGGREGATORS = ("kuaidi100", "17track", "aftership")
CREDS = SimCredentials()


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def statuses(snapshot: TrackingSnapshot) -> list[S]:
    return [event.status for event in snapshot.events]


def assert_well_formed(snapshot: TrackingSnapshot) -> None:
    times = [event.at for event in snapshot.events]
    assert times == sorted(times), "events are oldest first"
    assert all(t.utcoffset() == timedelta(0) for t in times), "UTC-aware"


Handler = Callable[[httpx.Request], httpx.Response]


def mock_http(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def replay(*answers: tuple[int, bytes], seen: list[httpx.Request] | None = None) -> Handler:
    """Answer the requests in order with the given (status, body)s; remember the requests."""
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        status, body = queue.pop(0)
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    return handler


# --- Kuaidi100 samples -------------------------------------------------------------------------------------
def kuaidi100_client(http: httpx.AsyncClient, base_url: str = "http://kd100.invalid") -> Kuaidi100Client:
    return Kuaidi100Client(
        http, base_url, customer=CREDS.kuaidi100_customer, key=CREDS.kuaidi100_key, company="shunfeng", salt="s4lt"
    )


async def test_kuaidi100_delivered_sample_and_signed_query() -> None:
    seen: list[httpx.Request] = []
    async with mock_http(replay((200, sample("kuaidi100_query_delivered.json")), seen=seen)) as http:
        snapshot = await kuaidi100_client(http).track("SF1402837561234")
    form = {k: v[0] for k, v in parse_qs(seen[0].content.decode()).items()}
    assert seen[0].url.path == "/poll/query.do"
    assert form["customer"] == CREDS.kuaidi100_customer
    expected_sign = hashlib.md5((form["param"] + CREDS.kuaidi100_key + CREDS.kuaidi100_customer).encode()).hexdigest()
    assert form["sign"] == expected_sign.upper()
    assert json.loads(form["param"]) == {"com": "shunfeng", "num": "SF1402837561234", "resultv2": "4", "order": "asc"}

    assert snapshot.carrier == "kuaidi100" and snapshot.tracking_no == "SF1402837561234"
    assert snapshot.status is S.DELIVERED
    assert statuses(snapshot) == [S.PICKED_UP, S.IN_TRANSIT, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]
    assert snapshot.events[0].at == utc(2026, 5, 6, 10, 2, 11)  # 18:02:11 in Shanghai
    assert snapshot.events[0].location == "深圳市"
    assert snapshot.signed_by == "王小明"
    assert snapshot.signed_at == utc(2026, 5, 8, 2, 12, 30)
    assert_well_formed(snapshot)


async def test_kuaidi100_in_transit_sample_with_company_prefix() -> None:
    seen: list[httpx.Request] = []
    async with mock_http(replay((200, sample("kuaidi100_query_in_transit.json")), seen=seen)) as http:
        snapshot = await kuaidi100_client(http).track("yuantong:YT7788990011")
    param = json.loads(parse_qs(seen[0].content.decode())["param"][0])
    assert (param["com"], param["num"]) == ("yuantong", "YT7788990011")
    assert snapshot.tracking_no == "yuantong:YT7788990011"
    assert snapshot.status is S.IN_TRANSIT
    assert statuses(snapshot) == [S.INFO_RECEIVED, S.PICKED_UP, S.IN_TRANSIT, S.IN_TRANSIT]
    assert snapshot.events[1].location == "上海,上海市"  # areaName when there is no location
    assert snapshot.signed_by is None and snapshot.signed_at is None
    assert_well_formed(snapshot)


async def test_kuaidi100_refused_sample() -> None:
    async with mock_http(replay((200, sample("kuaidi100_query_refused.json")))) as http:
        snapshot = await kuaidi100_client(http).track("zhongtong:ZT5566778899")
    assert snapshot.status is S.REFUSED
    assert statuses(snapshot) == [S.PICKED_UP, S.OUT_FOR_DELIVERY, S.REFUSED]
    assert snapshot.signed_by is None


async def test_kuaidi100_no_result_is_an_unknown_parcel_other_failures_are_carrier_errors() -> None:
    async with mock_http(replay((200, sample("kuaidi100_query_no_result.json")))) as http:
        with pytest.raises(UnknownParcel):
            await kuaidi100_client(http).track("SF000")
    bad_sign = b'{"result": false, "returnCode": "503", "message": "bad sign"}'
    wrong_number = sample("kuaidi100_query_delivered.json")
    for body in (bad_sign, wrong_number, b'{"data": "nope"}'):
        async with mock_http(replay((200, body))) as http:
            with pytest.raises(CarrierError) as info:
                await kuaidi100_client(http).track("SF999")
        assert not isinstance(info.value, UnknownParcel)


def test_kuaidi100_push_parses_and_checks_the_signature() -> None:
    param = sample("kuaidi100_push_returning.json").decode()
    body = urlencode({"param": param, "sign": kuaidi100.push_sign(param, "s4lt")}).encode()
    got_param, sign = kuaidi100.parse_push_form(body)
    assert got_param == param
    assert sign == hashlib.md5((param + "s4lt").encode()).hexdigest().upper()
    assert kuaidi100.verify_push_signature(got_param, sign, "s4lt")
    assert kuaidi100.verify_push_signature(got_param, sign.lower(), "s4lt")  # hex case does not matter
    assert not kuaidi100.verify_push_signature(got_param, sign, "other-salt")
    assert not kuaidi100.verify_push_signature(got_param + " ", sign, "s4lt")  # body changed
    assert not kuaidi100.verify_push_signature(got_param, None, "s4lt")
    assert not kuaidi100.verify_push_signature(got_param, "", "s4lt")
    assert not kuaidi100.verify_push_signature(got_param, sign, "")  # no salt configured: refuse all

    snapshot = kuaidi100.parse_push(got_param, default_company="shunfeng")
    assert snapshot is not None
    assert snapshot.tracking_no == "SF1409988776655"
    assert snapshot.status is S.RETURNING
    assert statuses(snapshot) == [S.PICKED_UP, S.OUT_FOR_DELIVERY, S.ATTEMPT_FAILED, S.RETURNING]
    assert snapshot.events[-1].at == utc(2026, 5, 16, 5, 5)
    assert_well_formed(snapshot)
    other = kuaidi100.parse_push(got_param, default_company="yuantong")
    assert other is not None and other.tracking_no == "shunfeng:SF1409988776655"


def test_kuaidi100_push_without_trace_and_garbage() -> None:
    abort = json.dumps({"status": "abort", "message": "3天查询无记录", "lastResult": {"message": "", "nu": "SF1"}})
    assert kuaidi100.parse_push(abort) is None
    with pytest.raises(CarrierError):
        kuaidi100.parse_push("{not json")
    with pytest.raises(CarrierError):
        kuaidi100.parse_push_form(b"sign=ABC")


# --- 17TRACK samples ---------------------------------------------------------------------------------------
def track17_client(http: httpx.AsyncClient, base_url: str = "http://17.invalid/track/v2.2") -> Track17Client:
    return Track17Client(http, base_url, key=CREDS.track17_key)


async def test_track17_delivered_sample_merges_providers() -> None:
    seen: list[httpx.Request] = []
    async with mock_http(replay((200, sample("track17_gettrackinfo_delivered.json")), seen=seen)) as http:
        snapshot = await track17_client(http).track("RR123456785CN")
    assert seen[0].url.path == "/track/v2.2/gettrackinfo"
    assert seen[0].headers["17token"] == CREDS.track17_key
    assert json.loads(seen[0].content) == [{"number": "RR123456785CN"}]
    assert snapshot.carrier == "17track" and snapshot.status is S.DELIVERED
    assert statuses(snapshot) == [
        S.INFO_RECEIVED,
        S.PICKED_UP,
        S.IN_TRANSIT,
        S.IN_TRANSIT,
        S.OUT_FOR_DELIVERY,
        S.DELIVERED,
    ]
    assert snapshot.events[0].at == utc(2026, 5, 11, 0, 0)
    assert snapshot.signed_by == "K. MUELLER"
    assert snapshot.signed_at == utc(2026, 5, 20, 12, 3)
    assert_well_formed(snapshot)


async def test_track17_in_transit_and_returned_samples() -> None:
    async with mock_http(replay((200, sample("track17_gettrackinfo_in_transit.json")))) as http:
        moving = await track17_client(http).track("LX998877665CN")
    assert moving.status is S.IN_TRANSIT
    assert statuses(moving) == [S.PICKED_UP, S.IN_TRANSIT]
    async with mock_http(replay((200, sample("track17_gettrackinfo_returned.json")))) as http:
        back = await track17_client(http).track("UJ445566778US")
    assert back.status is S.RETURNED
    assert statuses(back) == [S.OUT_FOR_DELIVERY, S.ATTEMPT_FAILED, S.RETURNING, S.RETURNED]
    assert back.events[-1].at == utc(2026, 6, 2, 16, 20)
    assert back.signed_by is None
    assert_well_formed(back)


async def test_track17_unregistered_number_is_registered_then_asked_again() -> None:
    not_registered = json.dumps(
        {"code": 0, "data": {"accepted": [], "rejected": [{"number": "LX998877665CN", "error": {"code": -18019902}}]}}
    ).encode()
    registered = json.dumps({"code": 0, "data": {"accepted": [{"number": "LX998877665CN"}], "rejected": []}}).encode()
    seen: list[httpx.Request] = []
    handler = replay(
        (200, not_registered), (200, registered), (200, sample("track17_gettrackinfo_in_transit.json")), seen=seen
    )
    async with mock_http(handler) as http:
        snapshot = await track17_client(http).track("LX998877665CN")
    assert [r.url.path.rsplit("/", 1)[-1] for r in seen] == ["gettrackinfo", "register", "gettrackinfo"]
    assert snapshot.status is S.IN_TRANSIT
    refused = json.dumps(
        {"code": 0, "data": {"rejected": [{"number": "X1", "error": {"code": -18010012, "message": "invalid"}}]}}
    ).encode()
    seen.clear()
    x1_not_registered = not_registered.replace(b"LX998877665CN", b"X1")
    async with mock_http(replay((200, x1_not_registered), (200, refused), seen=seen)) as http:
        with pytest.raises(UnknownParcel):
            await track17_client(http).track("X1")
    assert len(seen) == 2  # a refused registration is not asked about again


async def test_track17_refusals_of_the_whole_call_are_carrier_errors() -> None:
    bad_token = b'{"code": -18010002, "data": {"errors": [{"code": -18010002, "message": "Invalid key."}]}}'
    for status, body in ((200, bad_token), (401, bad_token), (200, b'{"data": {}}')):
        async with mock_http(replay((status, body))) as http:
            with pytest.raises(CarrierError) as info:
                await track17_client(http).track("RR1")
        assert not isinstance(info.value, UnknownParcel)


def test_track17_push_parses_and_checks_the_signature() -> None:
    body = sample("track17_push_refused.json")
    key = CREDS.track17_key
    signature = hashlib.sha256(body + b"/" + key.encode()).hexdigest()
    assert track17.sign(body, key) == signature
    assert track17.verify_push_signature(body, signature, key)
    assert track17.verify_push_signature(body, signature.upper(), key)
    assert not track17.verify_push_signature(body + b" ", signature, key)
    assert not track17.verify_push_signature(body, signature, "another-key")
    assert not track17.verify_push_signature(body, None, key)
    assert not track17.verify_push_signature(body, signature, "")

    snapshot = track17.parse_push(body)
    assert snapshot is not None
    assert snapshot.tracking_no == "RB112233445CN" and snapshot.status is S.REFUSED
    assert statuses(snapshot) == [S.OUT_FOR_DELIVERY, S.REFUSED]
    assert snapshot.events[-1].at == utc(2026, 6, 5, 6, 0)
    assert track17.parse_push(sample("track17_push_stopped.json")) is None
    with pytest.raises(CarrierError):
        track17.parse_push(b'{"event": "TRACKING_UPDATED"}')


# --- AfterShip samples -------------------------------------------------------------------------------------
def aftership_client(http: httpx.AsyncClient, base_url: str = "http://as.invalid/v4") -> AfterShipClient:
    return AfterShipClient(http, base_url, api_key=CREDS.aftership_key, slug="sf-express")


async def test_aftership_delivered_sample() -> None:
    seen: list[httpx.Request] = []
    async with mock_http(replay((200, sample("aftership_tracking_delivered.json")), seen=seen)) as http:
        snapshot = await aftership_client(http).track("ups:1Z9999W99999999999")
    assert seen[0].method == "GET" and seen[0].url.path == "/v4/trackings/ups/1Z9999W99999999999"
    assert seen[0].headers["as-api-key"] == CREDS.aftership_key
    assert snapshot.carrier == "aftership" and snapshot.tracking_no == "ups:1Z9999W99999999999"
    assert snapshot.status is S.DELIVERED
    assert statuses(snapshot) == [S.INFO_RECEIVED, S.PICKED_UP, S.IN_TRANSIT, S.OUT_FOR_DELIVERY, S.DELIVERED]
    assert snapshot.events[2].location == "Newark, NJ, USA"
    assert snapshot.signed_by == "J. SMITH"
    assert snapshot.signed_at == utc(2026, 6, 10, 17, 45)
    assert_well_formed(snapshot)


async def test_aftership_in_transit_and_exception_samples() -> None:
    async with mock_http(replay((200, sample("aftership_tracking_in_transit.json")))) as http:
        moving = await aftership_client(http).track("SF1307788990012")
    assert moving.status is S.IN_TRANSIT
    assert statuses(moving) == [S.PICKED_UP, S.IN_TRANSIT, S.IN_TRANSIT]
    async with mock_http(replay((200, sample("aftership_tracking_exception.json")))) as http:
        trouble = await aftership_client(http).track("dhl:JD014600006281234567")
    assert trouble.status is S.RETURNING
    assert statuses(trouble) == [S.ATTEMPT_FAILED, S.REFUSED, S.RETURNING]
    assert trouble.signed_by is None


async def test_aftership_unknown_tracking_is_created_then_read_or_unknown() -> None:
    created = b'{"meta": {"code": 201}, "data": {"tracking": {"tracking_number": "SF1307788990012"}}}'
    seen: list[httpx.Request] = []
    handler = replay(
        (404, sample("aftership_tracking_not_found.json")),
        (201, created),
        (200, sample("aftership_tracking_in_transit.json")),
        seen=seen,
    )
    async with mock_http(handler) as http:
        snapshot = await aftership_client(http).track("SF1307788990012")
    assert [r.method for r in seen] == ["GET", "POST", "GET"]
    assert json.loads(seen[1].content) == {"tracking": {"slug": "sf-express", "tracking_number": "SF1307788990012"}}
    assert snapshot.status is S.IN_TRANSIT
    invalid = b'{"meta": {"code": 4005, "message": "invalid tracking_number"}, "data": {}}'
    async with mock_http(replay((404, sample("aftership_tracking_not_found.json")), (400, invalid))) as http:
        with pytest.raises(UnknownParcel):
            await aftership_client(http).track("nonsense")


async def test_aftership_other_refusals_are_carrier_errors() -> None:
    unauthorized = b'{"meta": {"code": 401, "message": "Invalid API key."}, "data": {}}'
    for status, body in ((401, unauthorized), (404, b'{"detail": "Not Found"}'), (200, b'{"meta": {"code": 200}}')):
        async with mock_http(replay((status, body))) as http:
            with pytest.raises(CarrierError) as info:
                await aftership_client(http).track("SF1")
        assert not isinstance(info.value, UnknownParcel)


def test_aftership_webhook_parses_and_checks_the_signature() -> None:
    body = sample("aftership_webhook_delivered.json")
    secret = "whsec"
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    assert aftership.sign(body, secret) == signature
    assert aftership.verify_webhook_signature(body, signature, secret)
    assert not aftership.verify_webhook_signature(body.replace(b"M. GARCIA", b"M. GARCIB"), signature, secret)
    assert not aftership.verify_webhook_signature(body, signature, "other")
    assert not aftership.verify_webhook_signature(body, None, secret)
    assert not aftership.verify_webhook_signature(body, "", secret)
    assert not aftership.verify_webhook_signature(body, signature, "")

    snapshot = aftership.parse_webhook(body, default_slug="sf-express")
    assert snapshot is not None
    assert snapshot.tracking_no == "SF1301122334455"
    assert snapshot.status is S.DELIVERED
    assert statuses(snapshot) == [S.AVAILABLE_FOR_PICKUP, S.DELIVERED]
    assert snapshot.signed_by == "M. GARCIA"
    assert snapshot.signed_at == utc(2026, 6, 18, 9, 20)
    other = aftership.parse_webhook(body, default_slug="ups")
    assert other is not None and other.tracking_no == "sf-express:SF1301122334455"
    assert aftership.parse_webhook(b'{"event": "edd_revise", "msg": {"id": "x"}}') is None
    with pytest.raises(CarrierError):
        aftership.parse_webhook(b"[]")


# --- against the real simulator ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with running_simulator(advance="query") as url:
        yield url


def sim_settings(url: str) -> Settings:
    return Settings.model_validate(
        {
            "carrier_sim_url": url,
            "carrier_kuaidi100_customer": CREDS.kuaidi100_customer,
            "carrier_kuaidi100_key": CREDS.kuaidi100_key,
            "carrier_17track_key": CREDS.track17_key,
            "carrier_aftership_key": CREDS.aftership_key,
        }
    )


def client_for(code: str, http: httpx.AsyncClient, url: str) -> CarrierClient:
    return carrier_client(code, http, sim_settings(url))


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_reaches_delivered_with_signer_in_query_mode(sim_url: str, code: str) -> None:
    number = f"Q{code.upper()}001"
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for(code, http, sim_url)
        seen = [(await client.track(number)).status for _ in range(5)]
        final = await client.track(number)  # stays delivered, same signer
    assert seen == ORDERED
    assert final.carrier == code and final.tracking_no == number
    assert final.status is S.DELIVERED
    assert final.signed_by == signer_for(number)
    assert statuses(final) == ORDERED
    assert final.signed_at == final.events[-1].at
    assert all(event.location and event.description for event in final.events)
    assert_well_formed(final)


async def test_track17_batches_of_at_most_40_numbers(sim_url: str) -> None:
    sizes: list[tuple[str, int]] = []

    async def record(request: httpx.Request) -> None:
        sizes.append((request.url.path.rsplit("/", 1)[-1], len(json.loads(request.content))))

    numbers = [f"B17N{i:03d}" for i in range(45)]
    async with httpx.AsyncClient(timeout=5, event_hooks={"request": [record]}) as http:
        client = client_for("17track", http, sim_url)
        assert isinstance(client, Track17Client)
        first = await client.track_many([*numbers, numbers[0]])  # a repeated number is asked once
        assert sizes == [("gettrackinfo", 40), ("gettrackinfo", 5), ("register", 40), ("register", 5)] + [
            ("gettrackinfo", 40),
            ("gettrackinfo", 5),
        ]
        assert [s.tracking_no for s in first] == numbers
        assert {s.status for s in first} == {S.INFO_RECEIVED}
        sizes.clear()
        second = await client.track_many(numbers)
        assert sizes == [("gettrackinfo", 40), ("gettrackinfo", 5)]
        assert {s.status for s in second} == {S.PICKED_UP}
        await set_fault(http, sim_url, "B17N044", "unknown", times=None)
        await set_fault(http, sim_url, "B17NEW1", "unknown", times=None)
        batch = await client.track_batch(["B17N043", "B17N044", "B17NEW1"])
        assert [s.tracking_no for s in batch.snapshots] == ["B17N043"]
        assert batch.unknown == ["B17N044", "B17NEW1"]


async def test_kuaidi100_subscribe(sim_url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for("kuaidi100", http, sim_url)
        assert isinstance(client, Kuaidi100Client)
        await client.subscribe("SUB001", "http://127.0.0.1:9/webhooks/carriers/kuaidi100")
        await client.subscribe("SUB001", "http://127.0.0.1:9/webhooks/carriers/kuaidi100")  # again: fine
        with pytest.raises(CarrierError):
            await client.subscribe("SUB002", "")  # the simulator refuses a subscription without callback
        stranger = Kuaidi100Client(
            http, sim_url + "/kuaidi100", customer=CREDS.kuaidi100_customer, key="wrong", company="shunfeng"
        )
        with pytest.raises(CarrierError):
            await stranger.subscribe("SUB003", "http://127.0.0.1:9/cb")
        # subscribed parcels exist: the first query shows the first step
        assert (await client.track("SUB001")).status is S.INFO_RECEIVED


async def set_fault(http: httpx.AsyncClient, url: str, number: str, kind: str, **extra: Any) -> None:
    response = await http.post(f"{url}/sim/faults", json={"tracking_no": number, "kind": kind, **extra})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_rate_limit_with_retry_after_does_not_move_the_parcel(sim_url: str, code: str) -> None:
    number = f"RL{code.upper()}"
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for(code, http, sim_url)
        await set_fault(http, sim_url, number, "rate_limit", retry_after=7)
        with pytest.raises(CarrierUnavailable) as info:
            await client.track(number)
        assert (info.value.status_code, info.value.retry_after) == (429, 7.0)
        assert (await client.track(number)).status is S.INFO_RECEIVED  # the fault was used up, nothing moved
        await set_fault(http, sim_url, number, "rate_limit", retry_after=None, times=2)
        for _ in range(2):
            with pytest.raises(CarrierUnavailable) as info:
                await client.track(number)
            assert (info.value.status_code, info.value.retry_after) == (429, None)
        assert (await client.track(number)).status is S.PICKED_UP


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_server_error_malformed_json_and_timeout(sim_url: str, code: str) -> None:
    number = f"SE{code.upper()}"
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for(code, http, sim_url)
        await set_fault(http, sim_url, number, "server_error", status_code=502)
        with pytest.raises(CarrierUnavailable) as unavailable:
            await client.track(number)
        assert unavailable.value.status_code == 502
        await set_fault(http, sim_url, number, "malformed")
        with pytest.raises(CarrierError) as malformed:
            await client.track(number)
        assert not isinstance(malformed.value, UnknownParcel | CarrierUnavailable)
        assert "malformed" in str(malformed.value)
        await set_fault(http, sim_url, number, "timeout", delay_seconds=0.05)
        with pytest.raises(CarrierUnavailable) as slow:  # a patient client sees the 504
            await client.track(number)
        assert slow.value.status_code == 504
    async with httpx.AsyncClient(timeout=0.2) as impatient:
        await set_fault(impatient, sim_url, number, "timeout", delay_seconds=0.6)
        with pytest.raises(CarrierUnavailable, match="timed out"):
            await client_for(code, impatient, sim_url).track(number)
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await client_for(code, http, sim_url).track(number)).status is S.INFO_RECEIVED


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_unknown_number_until_the_fault_is_cleared(sim_url: str, code: str) -> None:
    number = f"UN{code.upper()}"
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for(code, http, sim_url)
        await set_fault(http, sim_url, number, "unknown", times=None)
        for _ in range(2):
            with pytest.raises(UnknownParcel):
                await client.track(number)
        assert (await http.delete(f"{sim_url}/sim/faults/{number}")).status_code == 204
        assert (await client.track(number)).status is S.INFO_RECEIVED


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_wrong_credentials_are_carrier_errors(sim_url: str, code: str) -> None:
    settings = sim_settings(sim_url).model_copy(
        update={"carrier_kuaidi100_key": "x", "carrier_17track_key": "x", "carrier_aftership_key": "x"}
    )
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(CarrierError) as info:
            await carrier_client(code, http, settings).track(f"CR{code.upper()}")
    assert not isinstance(info.value, UnknownParcel)


@pytest.mark.parametrize("code", AGGREGATORS)
async def test_server_down_is_unavailable(code: str) -> None:
    with running_simulator() as url:
        pass  # stopped on exit
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(CarrierUnavailable, match="unreachable"):
            await client_for(code, http, url).track("DOWN1")


async def test_sim_route_honours_faults_too(sim_url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        client = client_for("sim", http, sim_url)
        await set_fault(http, sim_url, "SIMF1", "server_error")
        with pytest.raises(CarrierError):
            await client.track("SIMF1")
        await set_fault(http, sim_url, "SIMF1", "unknown")
        with pytest.raises(UnknownParcel):
            await client.track("SIMF1")
        assert (await client.track("SIMF1")).status is S.INFO_RECEIVED


async def test_fault_route_validates_and_deletes_idempotently(sim_url: str) -> None:
    async with httpx.AsyncClient(base_url=sim_url, timeout=5) as http:
        for bad in (
            {"tracking_no": "F1", "kind": "gremlins"},
            {"tracking_no": "F1", "kind": "rate_limit", "times": 0},
            {"tracking_no": "F 1", "kind": "unknown"},
            {"tracking_no": "F1", "kind": "server_error", "status_code": 404},
        ):
            assert (await http.post("/sim/faults", json=bad)).status_code == 422, bad
        assert (await http.delete("/sim/faults/NEVERSET")).status_code == 204


def test_fault_book_counts_down() -> None:
    book = FaultBook()
    book.set(FaultSpec(tracking_no="A", kind="malformed", times=2))
    book.set(FaultSpec(tracking_no="B", kind="unknown", times=None))
    assert [book.take("A") is not None for _ in range(3)] == [True, True, False]
    assert all(book.take("B") is not None for _ in range(5))
    assert book.clear("B") and not book.clear("B")
    assert book.take("B") is None


def test_simulator_credentials_are_the_settings_defaults() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert SimCredentials() == SimCredentials(
        kuaidi100_customer=defaults["carrier_kuaidi100_customer"],
        kuaidi100_key=defaults["carrier_kuaidi100_key"],
        track17_key=defaults["carrier_17track_key"],
        aftership_key=defaults["carrier_aftership_key"],
    )


def test_registry_builds_the_aggregators_from_settings() -> None:
    assert {"sim", *AGGREGATORS} <= KNOWN_CARRIERS
    settings = Settings.model_validate({"carrier_sim_url": "http://127.0.0.1:8081/"})
    assert carrier_base_url("kuaidi100", settings) == "http://127.0.0.1:8081/kuaidi100"
    assert carrier_base_url("17track", settings) == "http://127.0.0.1:8081/track17/track/v2.2"
    assert carrier_base_url("aftership", settings) == "http://127.0.0.1:8081/aftership/v4"
    real = settings.model_copy(update={"carrier_17track_url": "https://api.17track.net/track/v2.2"})
    assert carrier_base_url("17track", real) == "https://api.17track.net/track/v2.2"
    http = httpx.AsyncClient()
    kinds = {code: type(carrier_client(code, http, settings)) for code in AGGREGATORS}
    assert kinds == {"kuaidi100": Kuaidi100Client, "17track": Track17Client, "aftership": AfterShipClient}
    assert all(carrier_client(code, http, settings).code == code for code in AGGREGATORS)
