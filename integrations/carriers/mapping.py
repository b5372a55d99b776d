"""Carrier statuses → the canonical tracking statuses (docs/architecture.md), one table per carrier, and the pure
helpers the carrier adapters share (times, signer, Retry-After, HTTP answer classification). No I/O here.

Mapping principle: a carrier's *family* (Kuaidi100 top-level state, 17TRACK main status, AfterShip tag) maps to
its canonical counterpart; a *detail* code (Kuaidi100 advanced state, 17TRACK sub-status, AfterShip subtag)
overrides the family only where the canonical set says something more precise: a refusal is REFUSED, a
parcel on its way back is RETURNING, back at the sender is RETURNED, a pickup point is AVAILABLE_FOR_PICKUP,
the first scan is PICKED_UP, and anything that needs a human (customs asking for papers, an invalid number)
is EXCEPTION. A code no table knows falls back to its family, and an unknown family to EXCEPTION: a status we
cannot read is something a person should look at, not something to guess as "in transit".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from integrations.carriers.base import CarrierError, CarrierUnavailable
from models.status import TrackingStatus

S = TrackingStatus

# --- Kuaidi100 (快递100) ---------------------------------------------------------------------------------
# `state` of the real-time query / push. Top-level codes 0–14, plus the advanced codes returned with
# resultv2=4 (on the answer and, as `statusCode`, on each trace line).
KUAIDI100_STATES: Final[dict[str, TrackingStatus]] = {
    "0": S.IN_TRANSIT,  # 在途
    "1": S.PICKED_UP,  # 揽收
    "2": S.EXCEPTION,  # 疑难: a problem parcel, cause unknown
    "3": S.DELIVERED,  # 签收
    "4": S.RETURNED,  # 退签: returned and signed for by the sender
    "5": S.OUT_FOR_DELIVERY,  # 派件
    "6": S.RETURNING,  # 退回: on its way back to the sender
    "7": S.IN_TRANSIT,  # 转投/转单: handed to another carrier, still moving
    "8": S.IN_TRANSIT,  # 清关
    "10": S.IN_TRANSIT,  # 待清关
    "11": S.IN_TRANSIT,  # 清关中
    "12": S.IN_TRANSIT,  # 已清关
    "13": S.EXCEPTION,  # 清关异常
    "14": S.REFUSED,  # 拒签 (收件人拒签)
    # advanced states (resultv2=4)
    "101": S.INFO_RECEIVED,  # 已下单
    "102": S.INFO_RECEIVED,  # 待揽收
    "103": S.PICKED_UP,  # 已揽收
    "1001": S.IN_TRANSIT,  # 到达派件城市
    "1002": S.IN_TRANSIT,  # 干线
    "1003": S.IN_TRANSIT,  # 转递: forwarded to a new address
    "501": S.AVAILABLE_FOR_PICKUP,  # 投柜或驿站
    "301": S.DELIVERED,  # 本人签收
    "302": S.DELIVERED,  # 派件异常后签收
    "303": S.DELIVERED,  # 代签
    "304": S.DELIVERED,  # 投柜或站签收
    "401": S.EXCEPTION,  # 已销单: waybill cancelled; no canonical CANCELLED, a person must look
    "201": S.EXCEPTION,  # 超时未签收
    "202": S.EXCEPTION,  # 超时未更新
    "203": S.REFUSED,  # 拒收(退件)
    "204": S.ATTEMPT_FAILED,  # 派件异常
    "205": S.EXCEPTION,  # 柜或驿站超时未取
    "206": S.ATTEMPT_FAILED,  # 无法联系
    "207": S.EXCEPTION,  # 超区
    "208": S.EXCEPTION,  # 滞留
    "209": S.EXCEPTION,  # 破损
    "210": S.EXCEPTION,  # 销单
}
# The state *name* on each trace line (resultv2=1 and up), for lines that carry no code.
KUAIDI100_STATE_NAMES: Final[dict[str, TrackingStatus]] = {
    "在途": S.IN_TRANSIT,
    "揽收": S.PICKED_UP,
    "疑难": S.EXCEPTION,
    "签收": S.DELIVERED,
    "退签": S.RETURNED,
    "派件": S.OUT_FOR_DELIVERY,
    "退回": S.RETURNING,
    "转投": S.IN_TRANSIT,
    "转单": S.IN_TRANSIT,
    "清关": S.IN_TRANSIT,
    "待清关": S.IN_TRANSIT,
    "清关中": S.IN_TRANSIT,
    "已清关": S.IN_TRANSIT,
    "清关异常": S.EXCEPTION,
    "拒签": S.REFUSED,
    "已下单": S.INFO_RECEIVED,
    "待揽收": S.INFO_RECEIVED,
    "已揽收": S.PICKED_UP,
    "到达派件城市": S.IN_TRANSIT,
    "干线": S.IN_TRANSIT,
    "转递": S.IN_TRANSIT,
    "投柜或驿站": S.AVAILABLE_FOR_PICKUP,
    "本人签收": S.DELIVERED,
    "派件异常后签收": S.DELIVERED,
    "代签": S.DELIVERED,
    "投柜或站签收": S.DELIVERED,
    "已销单": S.EXCEPTION,
    # the 疑难 family's advanced names: their text alone would read "派件异常" as 派件, "柜或驿站超时未取" as 驿站
    "超时未签收": S.EXCEPTION,
    "超时未更新": S.EXCEPTION,
    "拒收": S.REFUSED,
    "派件异常": S.ATTEMPT_FAILED,
    "柜或驿站超时未取": S.EXCEPTION,
    "无法联系": S.ATTEMPT_FAILED,
    "超区": S.EXCEPTION,
    "滞留": S.EXCEPTION,
    "破损": S.EXCEPTION,
    "销单": S.EXCEPTION,
}
# Last resort for a trace line with neither code nor name: keywords of the free text, first match wins.
# Negations and refusals come before the plain "签收" they contain.
KUAIDI100_CONTEXT_KEYWORDS: Final[tuple[tuple[str, TrackingStatus], ...]] = (
    ("拒签", S.REFUSED),
    ("拒收", S.REFUSED),
    ("未签收", S.EXCEPTION),
    ("退回", S.RETURNING),
    ("退件", S.RETURNING),
    ("签收", S.DELIVERED),
    ("待取件", S.AVAILABLE_FOR_PICKUP),
    ("驿站", S.AVAILABLE_FOR_PICKUP),
    ("快递柜", S.AVAILABLE_FOR_PICKUP),
    ("派件", S.OUT_FOR_DELIVERY),
    ("派送", S.OUT_FOR_DELIVERY),
    ("揽收", S.PICKED_UP),
    ("揽件", S.PICKED_UP),
    ("下单", S.INFO_RECEIVED),
)

# --- 17TRACK (API v2) ------------------------------------------------------------------------------------
TRACK17_STATUSES: Final[dict[str, TrackingStatus]] = {
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
TRACK17_SUB_STATUSES: Final[dict[str, TrackingStatus]] = {
    "NotFound_Other": S.PENDING,
    "NotFound_InvalidCode": S.EXCEPTION,  # the number itself is wrong: it will never be found
    "InfoReceived": S.INFO_RECEIVED,
    "InTransit_PickedUp": S.PICKED_UP,
    "InTransit_Other": S.IN_TRANSIT,
    "InTransit_Departure": S.IN_TRANSIT,
    "InTransit_Arrival": S.IN_TRANSIT,
    "InTransit_CustomsProcessing": S.IN_TRANSIT,
    "InTransit_CustomsReleased": S.IN_TRANSIT,
    "InTransit_CustomsRequiringInformation": S.EXCEPTION,  # customs wait for papers: someone must act
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
# Milestone `stage` of an event, used when an event carries no sub-status.
TRACK17_STAGES: Final[dict[str, TrackingStatus]] = {
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

# --- AfterShip (tags and subtags) ------------------------------------------------------------------------
AFTERSHIP_TAGS: Final[dict[str, TrackingStatus]] = {
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
AFTERSHIP_SUBTAGS: Final[dict[str, TrackingStatus]] = {
    **{f"Pending_00{i}": S.PENDING for i in range(1, 7)},
    "InfoReceived_001": S.INFO_RECEIVED,
    "InTransit_001": S.IN_TRANSIT,  # in transit
    "InTransit_002": S.PICKED_UP,  # acceptance scan: the carrier has it
    "InTransit_003": S.IN_TRANSIT,  # arrival scan
    "InTransit_004": S.IN_TRANSIT,  # arrived at the destination country
    "InTransit_005": S.IN_TRANSIT,  # customs clearance completed
    "InTransit_006": S.IN_TRANSIT,  # customs clearance started
    "InTransit_007": S.IN_TRANSIT,  # departure scan
    "InTransit_008": S.IN_TRANSIT,  # problem resolved
    "InTransit_009": S.IN_TRANSIT,  # forwarded to a different delivery address
    "OutForDelivery_001": S.OUT_FOR_DELIVERY,
    "OutForDelivery_003": S.OUT_FOR_DELIVERY,  # customer contacted
    "OutForDelivery_004": S.OUT_FOR_DELIVERY,  # delivery appointment scheduled
    "AttemptFail_001": S.ATTEMPT_FAILED,
    "AttemptFail_002": S.ATTEMPT_FAILED,  # addressee not available
    "AttemptFail_003": S.ATTEMPT_FAILED,  # business closed
    "Delivered_001": S.DELIVERED,
    "Delivered_002": S.DELIVERED,  # picked up by the customer
    "Delivered_003": S.DELIVERED,  # signed for by the customer
    "Delivered_004": S.DELIVERED,  # delivered, cash on delivery collected
    "Delivered_005": S.DELIVERED,  # delivered to a neighbour
    "AvailableForPickup_001": S.AVAILABLE_FOR_PICKUP,
    "Exception_001": S.EXCEPTION,
    "Exception_002": S.EXCEPTION,  # customer moved: needs a new address
    "Exception_003": S.REFUSED,  # customer refused delivery
    "Exception_004": S.EXCEPTION,  # delayed (customs clearance)
    "Exception_005": S.EXCEPTION,  # delayed (external factors)
    "Exception_006": S.EXCEPTION,  # held for payment
    "Exception_007": S.EXCEPTION,  # incorrect address
    "Exception_008": S.EXCEPTION,  # pickup missed
    "Exception_009": S.EXCEPTION,  # rejected by the carrier
    "Exception_010": S.RETURNING,  # returning to sender
    "Exception_011": S.RETURNED,  # returned to sender
    "Exception_012": S.EXCEPTION,  # shipment damaged
    "Exception_013": S.EXCEPTION,  # shipment lost
    "Expired_001": S.EXPIRED,
}

# --- EasyPost (tracker `status`) -------------------------------------------------------------------------
EASYPOST_STATUSES: Final[dict[str, TrackingStatus]] = {
    "unknown": S.PENDING,
    "pre_transit": S.INFO_RECEIVED,
    "in_transit": S.IN_TRANSIT,
    "out_for_delivery": S.OUT_FOR_DELIVERY,
    "available_for_pickup": S.AVAILABLE_FOR_PICKUP,
    "delivered": S.DELIVERED,
    "return_to_sender": S.RETURNING,  # "being returned": EasyPost has no separate "returned"
    "failure": S.EXCEPTION,  # terminal delivery failure (lost, undeliverable), not a retried attempt
    "cancelled": S.EXCEPTION,
    "error": S.EXCEPTION,
}


def kuaidi100_state(state: str | int | None) -> TrackingStatus:
    """The parcel's overall `state`; an unknown advanced code falls back to its family."""
    code = "" if state is None else str(state).strip()
    if code in KUAIDI100_STATES:
        return KUAIDI100_STATES[code]
    if code.isdigit() and len(code) == 3 and code[0] in "1234567":
        return KUAIDI100_STATES[code[0]]
    if code.isdigit() and len(code) == 4 and code.startswith("100"):
        return S.IN_TRANSIT  # 100x: the 在途 family
    return S.EXCEPTION


def kuaidi100_event_status(code: str | int | None, name: str | None, context: str) -> TrackingStatus:
    """One trace line: its advanced code, else its state name, else keywords of its text, else in transit."""
    if code is not None and str(code).strip():
        return kuaidi100_state(code)
    if name and name.strip() in KUAIDI100_STATE_NAMES:
        return KUAIDI100_STATE_NAMES[name.strip()]
    for keyword, status in KUAIDI100_CONTEXT_KEYWORDS:
        if keyword in context:
            return status
    return S.IN_TRANSIT


def track17_status(status: str | None, sub_status: str | None = None, stage: str | None = None) -> TrackingStatus:
    """A 17TRACK main status with its sub-status (or an event's milestone stage)."""
    if sub_status and sub_status in TRACK17_SUB_STATUSES:
        return TRACK17_SUB_STATUSES[sub_status]
    if stage and stage in TRACK17_STAGES:
        return TRACK17_STAGES[stage]
    family = status or (sub_status.split("_", 1)[0] if sub_status else "")
    return TRACK17_STATUSES.get(family, S.EXCEPTION)


def aftership_status(tag: str | None, subtag: str | None = None) -> TrackingStatus:
    """An AfterShip tag with its subtag; an unknown subtag falls back to its tag (the part before `_`)."""
    if subtag and subtag in AFTERSHIP_SUBTAGS:
        return AFTERSHIP_SUBTAGS[subtag]
    family = tag or (subtag.split("_", 1)[0] if subtag else "")
    return AFTERSHIP_TAGS.get(family, S.EXCEPTION)


def easypost_status(status: str | None) -> TrackingStatus:
    return EASYPOST_STATUSES.get((status or "").strip().lower(), S.EXCEPTION)


# --- signer ----------------------------------------------------------------------------------------------
_SIGNER_PATTERNS: Final = (
    # 已签收，签收人是张伟 / 签收人：张伟 / 签收人为【王芳】
    re.compile(r"签收人\s*[是为]?\s*[:：]?\s*[【\[]?(?P<name>[^\s，,。;；!！()（）【】\[\]]+)"),
    # Delivered, signed by: ZHANG WEI / Signed for by J. Smith.
    re.compile(r"signed\s+(?:for\s+)?by\s*[:：]?\s*(?P<name>[^,;()\n]+)", re.IGNORECASE),
)


def extract_signer(text: str) -> str | None:
    """The signer's name from a delivery line's free text, if it names one."""
    for pattern in _SIGNER_PATTERNS:
        match = pattern.search(text)
        if match:
            name = match.group("name").strip().rstrip(".").strip()
            if name:
                return name
    return None


# --- times -----------------------------------------------------------------------------------------------
# China Standard Time: UTC+8 all year (no DST since 1991); fixed, so no tzdata is needed.
CHINA_TIME: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
_KUAIDI100_FORMATS: Final = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")


def china_local_to_utc(text: str) -> datetime:
    """Kuaidi100 times ("2026-05-01 10:00:00") are Asia/Shanghai wall-clock times without an offset."""
    cleaned = text.strip()
    for fmt in _KUAIDI100_FORMATS:
        try:
            local = datetime.strptime(cleaned, fmt)  # noqa: DTZ007 (the zone is attached on the next line)
        except ValueError:
            continue
        return local.replace(tzinfo=CHINA_TIME).astimezone(UTC)
    raise ValueError(f"not a Kuaidi100 time: {text!r}")


def iso_to_utc(text: str, naive_zone: timezone = UTC) -> datetime:
    """An ISO-8601 time in UTC; a time without an offset is read in `naive_zone`."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=naive_zone)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: either delay-seconds or an HTTP-date. None when absent or garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


# --- HTTP answers ----------------------------------------------------------------------------------------
def raise_if_unavailable(carrier: str, response: httpx.Response, now: datetime) -> None:
    """429 and 5xx mean "not now": CarrierUnavailable with the Retry-After the carrier sent, if any."""
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        raise CarrierUnavailable(
            f"{carrier}: {response.request.url} answered HTTP {status}"
            + (f" (retry after {retry_after:g}s)" if retry_after is not None else ""),
            status_code=status,
            retry_after=retry_after,
        )


def json_body(carrier: str, response: httpx.Response) -> Any:
    """The answer's JSON; anything else is a CarrierError (retryable: the next answer may be whole)."""
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise CarrierError(f"{carrier}: malformed JSON from {response.request.url}: {exc}") from exc


def transport_error(carrier: str, url: str, exc: httpx.HTTPError) -> CarrierUnavailable:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return CarrierUnavailable(f"{carrier}: {url} {kind}: {exc!r}")
