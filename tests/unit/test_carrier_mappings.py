"""The carrier → canonical status tables and the pure helpers the adapters share."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from integrations.carriers import mapping
from integrations.carriers.base import CarrierError, CarrierUnavailable, UnknownParcel
from integrations.carriers.mapping import (
    AFTERSHIP_SUBTAGS,
    EASYPOST_STATUSES,
    KUAIDI100_STATE_NAMES,
    KUAIDI100_STATES,
    TRACK17_SUB_STATUSES,
    aftership_status,
    china_local_to_utc,
    easypost_status,
    extract_signer,
    iso_to_utc,
    kuaidi100_event_status,
    kuaidi100_state,
    parse_retry_after,
    track17_status,
)
from models.status import TrackingStatus as S

# --- Kuaidi100 ---------------------------------------------------------------------------------------------
KUAIDI100_DOCUMENTED = {
    "0": S.IN_TRANSIT,
    "1": S.PICKED_UP,
    "2": S.EXCEPTION,
    "3": S.DELIVERED,
    "4": S.RETURNED,
    "5": S.OUT_FOR_DELIVERY,
    "6": S.RETURNING,
    "7": S.IN_TRANSIT,
    "8": S.IN_TRANSIT,
    "10": S.IN_TRANSIT,
    "11": S.IN_TRANSIT,
    "12": S.IN_TRANSIT,
    "13": S.EXCEPTION,
    "14": S.REFUSED,
    "101": S.INFO_RECEIVED,
    "102": S.INFO_RECEIVED,
    "103": S.PICKED_UP,
    "1001": S.IN_TRANSIT,
    "1002": S.IN_TRANSIT,
    "1003": S.IN_TRANSIT,
    "501": S.AVAILABLE_FOR_PICKUP,
    "301": S.DELIVERED,
    "302": S.DELIVERED,
    "303": S.DELIVERED,
    "304": S.DELIVERED,
    "401": S.EXCEPTION,
    "201": S.EXCEPTION,
    "202": S.EXCEPTION,
    "203": S.REFUSED,
    "204": S.ATTEMPT_FAILED,
    "205": S.EXCEPTION,
    "206": S.ATTEMPT_FAILED,
    "207": S.EXCEPTION,
    "208": S.EXCEPTION,
    "209": S.EXCEPTION,
    "210": S.EXCEPTION,
}


@pytest.mark.parametrize(("code", "expected"), sorted(KUAIDI100_DOCUMENTED.items()))
def test_kuaidi100_state(code: str, expected: S) -> None:
    assert kuaidi100_state(code) is expected
    if code.isdigit():
        assert kuaidi100_state(int(code)) is expected  # the wire sends numbers or strings


@pytest.mark.parametrize(
    ("code", "expected"),
    [("305", S.DELIVERED), ("199", S.PICKED_UP), ("502", S.OUT_FOR_DELIVERY), ("1009", S.IN_TRANSIT)],
)
def test_kuaidi100_unknown_advanced_state_falls_back_to_its_family(code: str, expected: S) -> None:
    assert kuaidi100_state(code) is expected


@pytest.mark.parametrize("code", ["99", "9", "", None, "abc", "801"])
def test_kuaidi100_unreadable_state_is_an_exception(code: str | None) -> None:
    assert kuaidi100_state(code) is S.EXCEPTION


def test_kuaidi100_every_top_level_name_maps_like_its_code() -> None:
    pairs = {"在途": "0", "揽收": "1", "疑难": "2", "签收": "3", "退签": "4", "派件": "5", "退回": "6", "转投": "7"}
    pairs |= {"清关": "8", "待清关": "10", "清关中": "11", "已清关": "12", "清关异常": "13", "拒签": "14"}
    for name, code in pairs.items():
        assert KUAIDI100_STATE_NAMES[name] is KUAIDI100_STATES[code], name


# The documented advanced state names (resultv2=4), the `status` of a trace line that may come without its code.
KUAIDI100_ADVANCED_NAMES = {
    "已下单": "101", "待揽收": "102", "已揽收": "103", "到达派件城市": "1001", "干线": "1002", "转递": "1003",
    "投柜或驿站": "501", "本人签收": "301", "派件异常后签收": "302", "代签": "303", "投柜或站签收": "304",
    "已销单": "401", "超时未签收": "201", "超时未更新": "202", "拒收": "203", "派件异常": "204",
    "柜或驿站超时未取": "205", "无法联系": "206", "超区": "207", "滞留": "208", "破损": "209", "销单": "210",
}  # fmt: skip


@pytest.mark.parametrize(("name", "code"), sorted(KUAIDI100_ADVANCED_NAMES.items()))
def test_kuaidi100_every_advanced_name_maps_like_its_code(name: str, code: str) -> None:
    assert KUAIDI100_STATE_NAMES[name] is KUAIDI100_STATES[code]
    # a trace line naming its state but carrying no code: the name, not its text ("派件异常" is not 派件)
    assert kuaidi100_event_status(None, name, name) is KUAIDI100_STATES[code]


@pytest.mark.parametrize(
    ("code", "name", "context", "expected"),
    [
        ("301", "在途", "", S.DELIVERED),  # the code wins over the name
        (None, "派件", "已签收", S.OUT_FOR_DELIVERY),  # the name wins over the text
        (None, None, "【杭州】快件已签收，签收人是张伟", S.DELIVERED),
        (None, None, "收件人拒签，快件将退回", S.REFUSED),  # refusal before the return and the 签
        (None, None, "快件超时未签收", S.EXCEPTION),
        (None, None, "快件已退回寄件人", S.RETURNING),
        (None, None, "快件已存放至菜鸟驿站，请及时取件", S.AVAILABLE_FOR_PICKUP),
        (None, None, "快递员正在派送", S.OUT_FOR_DELIVERY),
        (None, None, "业务员已揽件", S.PICKED_UP),
        (None, None, "商家已下单", S.INFO_RECEIVED),
        (None, "", "快件离开【上海转运中心】", S.IN_TRANSIT),
        ("", "not-a-name", "", S.IN_TRANSIT),
    ],
)
def test_kuaidi100_event_status(code: str | None, name: str | None, context: str, expected: S) -> None:
    assert kuaidi100_event_status(code, name, context) is expected


# --- 17TRACK -----------------------------------------------------------------------------------------------
TRACK17_DOCUMENTED_SUB = {
    "NotFound_Other": S.PENDING,
    "NotFound_InvalidCode": S.EXCEPTION,
    "InfoReceived": S.INFO_RECEIVED,
    "InTransit_PickedUp": S.PICKED_UP,
    "InTransit_Other": S.IN_TRANSIT,
    "InTransit_Departure": S.IN_TRANSIT,
    "InTransit_Arrival": S.IN_TRANSIT,
    "InTransit_CustomsProcessing": S.IN_TRANSIT,
    "InTransit_CustomsReleased": S.IN_TRANSIT,
    "InTransit_CustomsRequiringInformation": S.EXCEPTION,
    "Expired_Other": S.EXPIRED,
    "AvailableForPickup_Other": S.AVAILABLE_FOR_PICKUP,
    "OutForDelivery_Other": S.OUT_FOR_DELIVERY,
    "DeliveryFailure_Other": S.ATTEMPT_FAILED,
    "DeliveryFailure_NoBody": S.ATTEMPT_FAILED,
    "DeliveryFailure_Security": S.ATTEMPT_FAILED,
    "DeliveryFailure_Rejected": S.REFUSED,
    "DeliveryFailure_InvalidAddress": S.ATTEMPT_FAILED,
    "Delivered_Other": S.DELIVERED,
    "Exception_Other": S.EXCEPTION,
    "Exception_Returning": S.RETURNING,
    "Exception_Returned": S.RETURNED,
    "Exception_NoBody": S.EXCEPTION,
    "Exception_Security": S.EXCEPTION,
    "Exception_Damage": S.EXCEPTION,
    "Exception_Rejected": S.REFUSED,
    "Exception_Delayed": S.EXCEPTION,
    "Exception_Lost": S.EXCEPTION,
    "Exception_Destroyed": S.EXCEPTION,
    "Exception_Cancel": S.EXCEPTION,
}


# 17TRACK's documented main statuses and milestone stages, and what each means for us.
TRACK17_DOCUMENTED_MAIN = {
    "NotFound": S.PENDING,
    "InfoReceived": S.INFO_RECEIVED,
    "InTransit": S.IN_TRANSIT,
    "Expired": S.EXPIRED,
    "AvailableForPickup": S.AVAILABLE_FOR_PICKUP,
    "OutForDelivery": S.OUT_FOR_DELIVERY,
    "DeliveryFailure": S.ATTEMPT_FAILED,
    "Delivered": S.DELIVERED,
    "Exception": S.EXCEPTION,
}
TRACK17_DOCUMENTED_STAGES = {
    "InfoReceived": S.INFO_RECEIVED,
    "PickedUp": S.PICKED_UP,
    "Departure": S.IN_TRANSIT,
    "Arrival": S.IN_TRANSIT,
    "AvailableForPickup": S.AVAILABLE_FOR_PICKUP,
    "OutForDelivery": S.OUT_FOR_DELIVERY,
    "Delivered": S.DELIVERED,
    "Returning": S.RETURNING,
    "Returned": S.RETURNED,
}


@pytest.mark.parametrize(("sub", "expected"), sorted(TRACK17_DOCUMENTED_SUB.items()))
def test_track17_sub_status(sub: str, expected: S) -> None:
    main = sub.split("_", 1)[0]
    assert track17_status(main, sub) is expected


@pytest.mark.parametrize(("main", "expected"), sorted(TRACK17_DOCUMENTED_MAIN.items()))
def test_track17_main_status_without_sub_status(main: str, expected: S) -> None:
    assert track17_status(main) is expected


@pytest.mark.parametrize(("stage", "expected"), sorted(TRACK17_DOCUMENTED_STAGES.items()))
def test_track17_event_stage(stage: str, expected: S) -> None:
    assert track17_status(None, None, stage) is expected


def test_track17_fallbacks() -> None:
    assert track17_status("InTransit", "InTransit_Teleported") is S.IN_TRANSIT  # unknown sub: its main status
    assert track17_status(None, "DeliveryFailure_Weather") is S.ATTEMPT_FAILED  # the sub's prefix names it
    assert track17_status("Vanished") is S.EXCEPTION
    assert track17_status(None) is S.EXCEPTION


# --- AfterShip ---------------------------------------------------------------------------------------------
# AfterShip's documented tags (what each means for us) and subtags; a subtag means its tag unless it says more.
AFTERSHIP_DOCUMENTED_TAGS = {
    "Pending": S.PENDING,
    "InfoReceived": S.INFO_RECEIVED,
    "InTransit": S.IN_TRANSIT,
    "OutForDelivery": S.OUT_FOR_DELIVERY,
    "AttemptFail": S.ATTEMPT_FAILED,
    "Delivered": S.DELIVERED,
    "AvailableForPickup": S.AVAILABLE_FOR_PICKUP,
    "Exception": S.EXCEPTION,
    "Expired": S.EXPIRED,
}
AFTERSHIP_DOCUMENTED_SUBTAGS = (
    [f"Pending_00{i}" for i in range(1, 7)]
    + ["InfoReceived_001"]
    + [f"InTransit_00{i}" for i in range(1, 10)]
    + ["OutForDelivery_001", "OutForDelivery_003", "OutForDelivery_004"]
    + [f"AttemptFail_00{i}" for i in range(1, 4)]
    + [f"Delivered_00{i}" for i in range(1, 6)]
    + ["AvailableForPickup_001"]
    + [f"Exception_{i:03d}" for i in range(1, 14)]
    + ["Expired_001"]
)
AFTERSHIP_OVERRIDES = {  # subtags that say more than their tag
    "InTransit_002": S.PICKED_UP,
    "Exception_003": S.REFUSED,
    "Exception_010": S.RETURNING,
    "Exception_011": S.RETURNED,
}


@pytest.mark.parametrize(("tag", "expected"), sorted(AFTERSHIP_DOCUMENTED_TAGS.items()))
def test_aftership_tag(tag: str, expected: S) -> None:
    assert aftership_status(tag) is expected


@pytest.mark.parametrize("subtag", AFTERSHIP_DOCUMENTED_SUBTAGS)
def test_aftership_subtag_is_its_tag_unless_it_says_more(subtag: str) -> None:
    tag = subtag.split("_", 1)[0]
    expected = AFTERSHIP_OVERRIDES.get(subtag, AFTERSHIP_DOCUMENTED_TAGS[tag])
    assert aftership_status(tag, subtag) is expected


def test_aftership_fallbacks() -> None:
    assert aftership_status("InTransit", "InTransit_099") is S.IN_TRANSIT
    assert aftership_status(None, "AttemptFail_009") is S.ATTEMPT_FAILED
    assert aftership_status("Delivered") is S.DELIVERED
    assert aftership_status("Teleported") is S.EXCEPTION


# --- EasyPost ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("unknown", S.PENDING),
        ("pre_transit", S.INFO_RECEIVED),
        ("in_transit", S.IN_TRANSIT),
        ("out_for_delivery", S.OUT_FOR_DELIVERY),
        ("available_for_pickup", S.AVAILABLE_FOR_PICKUP),
        ("delivered", S.DELIVERED),
        ("return_to_sender", S.RETURNING),
        ("failure", S.EXCEPTION),
        ("cancelled", S.EXCEPTION),
        ("error", S.EXCEPTION),
        ("DELIVERED", S.DELIVERED),
        ("beamed_up", S.EXCEPTION),
        (None, S.EXCEPTION),
    ],
)
def test_easypost_status(status: str | None, expected: S) -> None:
    assert easypost_status(status) is expected
    assert len(EASYPOST_STATUSES) == 10


def test_every_canonical_status_is_reachable_from_some_carrier() -> None:
    reached = (
        set(KUAIDI100_STATES.values())
        | set(TRACK17_SUB_STATUSES.values())
        | set(AFTERSHIP_SUBTAGS.values())
        | set(EASYPOST_STATUSES.values())
    )
    assert reached == set(S)
    # and each aggregator on its own can say delivered, refused, returning, returned and exception
    for table in (KUAIDI100_STATES, TRACK17_SUB_STATUSES, AFTERSHIP_SUBTAGS):
        assert {S.DELIVERED, S.REFUSED, S.RETURNING, S.RETURNED, S.EXCEPTION} <= set(table.values())


# --- signer, times, Retry-After, HTTP answers --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "signer"),
    [
        ("快件已签收，签收人是王小明，如有疑问请联系派件员", "王小明"),
        ("已签收,签收人:张伟", "张伟"),
        ("【杭州】已签收，签收人为【李娜】。", "李娜"),
        ("签收人： 本人", "本人"),
        ("Delivered. Signed by: K. MUELLER.", "K. MUELLER"),
        ("Delivered, signed for by J Smith", "J Smith"),
        ("DELIVERED (SIGNED BY: ROE), FRONT DOOR", "ROE"),
        ("快件已签收", None),
        ("Delivered to mailbox", None),
        ("", None),
    ],
)
def test_extract_signer(text: str, signer: str | None) -> None:
    assert extract_signer(text) == signer


def test_china_local_time_is_utc_plus_eight() -> None:
    assert china_local_to_utc("2026-05-08 10:12:30") == datetime(2026, 5, 8, 2, 12, 30, tzinfo=UTC)
    assert china_local_to_utc("2026-01-01 07:59") == datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a Kuaidi100 time"):
        china_local_to_utc("yesterday")


def test_iso_to_utc() -> None:
    assert iso_to_utc("2026-05-20T14:03:00+02:00") == datetime(2026, 5, 20, 12, 3, tzinfo=UTC)
    assert iso_to_utc("2026-05-20T12:03:00Z") == datetime(2026, 5, 20, 12, 3, tzinfo=UTC)
    assert iso_to_utc("2026-05-20T20:03:00") == datetime(2026, 5, 20, 20, 3, tzinfo=UTC)  # naive: UTC
    assert iso_to_utc("2026-05-20T20:03:00", mapping.CHINA_TIME) == datetime(2026, 5, 20, 12, 3, tzinfo=UTC)
    with pytest.raises(ValueError):
        iso_to_utc("")


def test_parse_retry_after() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 120 ", now) == 120.0
    assert parse_retry_after("Mon, 01 Jun 2026 12:01:30 GMT", now) == 90.0
    assert parse_retry_after("Mon, 01 Jun 2026 11:00:00 GMT", now) == 0.0  # in the past: now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None


def _response(status: int, content: bytes = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=content, headers=headers, request=httpx.Request("GET", "http://c.invalid/x"))


def test_http_answer_classification() -> None:
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(CarrierUnavailable) as info:
        mapping.raise_if_unavailable("c", _response(429, headers={"Retry-After": "12"}), now)
    assert (info.value.status_code, info.value.retry_after) == (429, 12.0)
    assert "retry after 12s" in str(info.value)
    with pytest.raises(CarrierUnavailable) as info:
        mapping.raise_if_unavailable("c", _response(502), now)
    assert (info.value.status_code, info.value.retry_after) == (502, None)
    for status in (200, 201, 400, 401, 404):
        mapping.raise_if_unavailable("c", _response(status), now)  # not "unavailable": the caller decides
    assert mapping.json_body("c", _response(200, b'{"a": 1}')) == {"a": 1}
    for garbage in (b"not json", b'{"a": ', b"\xff\xfe\x00"):
        with pytest.raises(CarrierError) as error:
            mapping.json_body("c", _response(200, garbage))
        assert not isinstance(error.value, UnknownParcel | CarrierUnavailable)
    timeout = mapping.transport_error("c", "http://c.invalid/x", httpx.ReadTimeout("slow"))
    assert isinstance(timeout, CarrierUnavailable) and "timed out" in str(timeout)
