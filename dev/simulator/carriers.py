"""Carrier simulator: a real HTTP server answering for carrier code `sim`, and in the shapes of the three
aggregators (`kuaidi100` under /kuaidi100, `17track` under /track17/track/v2.2, `aftership` under /aftership/v4).

Parcels appear on first sight and walk INFO_RECEIVED → … → DELIVERED, either one step per
`step_seconds` of wall-clock time ("time") or one step per GET ("query": deterministic, for tests
on a time-skipping Temporal server where wall-clock time means nothing). A 17TRACK query and an AfterShip GET
only know parcels already seen (registered/created, or queried through another route), like the real APIs.

Kuaidi100 subscriptions (POST /kuaidi100/poll with a callbackurl and salt) are honoured: whenever a subscribed
parcel moves, the simulator POSTs Kuaidi100's push form (`param`, `sign` = MD5(param + salt)) to the callback,
re-sending until it answers 200 (GET /sim/stats counts them under "pushes").

Faults per parcel: POST /sim/faults {"tracking_no", "kind", "times"} makes the next `times` answers about that
parcel (or all, with times null, until DELETE /sim/faults/{tracking_no}) a 5xx, a 429 with Retry-After, a
timeout (a 504 after `delay_seconds`), malformed JSON, or the carrier's "unknown number". A faulted answer does
not move the parcel.

Journeys per parcel: a parcel walks the happy journey above unless told otherwise, before or after it is first
seen. A journey is a list of steps, each {"status", "hold", "location", "description"}: `hold` is how many answers
(query mode) / steps of `step_seconds` (time mode) the step stays the newest (default 1; null: forever, only for
the last step); location and description default to the status's usual wording. With every hold 1 the k-th GET
shows step k-1, as before. Presets (JOURNEYS), each with one telling step whose hold `hold` sets:

    happy             INFO_RECEIVED → PICKED_UP → IN_TRANSIT → OUT_FOR_DELIVERY → DELIVERED
    backwards         … OUT_FOR_DELIVERY → IN_TRANSIT* (a sorting-centre scan is the newest event) → DELIVERED
    stall             … PICKED_UP → IN_TRANSIT* (hold 96 by default) → OUT_FOR_DELIVERY → DELIVERED
    delivery_failure  … OUT_FOR_DELIVERY → ATTEMPT_FAILED* → OUT_FOR_DELIVERY (next day) → DELIVERED
    refusal           … OUT_FOR_DELIVERY → REFUSED* → RETURNING → RETURNED
    return            … IN_TRANSIT → EXCEPTION* (address unknown) → RETURNING → RETURNED

    POST   /sim/journeys {"tracking_no", "journey": <preset>, "hold": n | null}   (hold absent: the preset's)
    POST   /sim/journeys {"tracking_no", "steps": [{"status", "hold"?, "location"?, "description"?}, ...]}
           → 201 (200 when it replaced the parcel's journey) with {"tracking_no", "journey", "steps"};
             422 and nothing changes on an unknown preset or status, a status not every carrier can say
             (PENDING, EXPIRED), no steps, a hold < 1, a forever hold before the last step, unknown fields
    GET    /sim/journeys/{tracking_no}   the parcel's journey (happy when none was set)
    GET    /sim/journeys                 the presets
    DELETE /sim/journeys/{tracking_no}   back to the happy journey (204, also when there was none)

A journey does not make a parcel seen (a 17TRACK register or AfterShip create still succeeds). A parcel already
seen keeps the events it has shown and goes on with the new journey's steps after them (by position); the newest
step's hold counts from when it was reached, so releasing a long stall moves on at the next answer, and in time
mode nothing is stamped before the change. Every journey status is said in all four shapes (CARRIER_WORDS);
only a DELIVERED parcel has a signer. Give repeated steps their own description: 17TRACK folds events with the
same time and text.

It also plays the peers customer notices go through: an SMS gateway under /sms (dev/simulator/
sms_gateway.py) and, with --smtp-port, a loopback mail server whose catch is listed at GET /mail/messages; and
the payment provider refunds are asked of, under /pay (dev/simulator/payment_provider.py).

    python -m dev.simulator.carriers --port 8081 --step-seconds 5 --advance time --smtp-port 8025
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from urllib.parse import parse_qs

import httpx
import uvicorn
from fastapi import FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from dev.simulator.payment_provider import payment_provider_router
from dev.simulator.sms_gateway import sms_gateway_router
from dev.simulator.smtp_sink import SmtpSink
from integrations.carriers import kuaidi100, track17
from integrations.carriers.aftership import AfterShipCheckpoint, AfterShipTracking
from integrations.carriers.mapping import CHINA_TIME
from integrations.carriers.sim import SimEvent, SimTrackResponse
from models.status import TrackingStatus

if TYPE_CHECKING:
    from core.config import Settings

ADVANCE_MODES: Final = ("time", "query")

# (status, location, description) per step, in delivery order.
STEPS: Final[tuple[tuple[TrackingStatus, str, str], ...]] = (
    (TrackingStatus.INFO_RECEIVED, "上海", "Shipment information received"),
    (TrackingStatus.PICKED_UP, "上海 浦东揽收网点", "Picked up by courier"),
    (TrackingStatus.IN_TRANSIT, "杭州 转运中心", "Departed sorting centre"),
    (TrackingStatus.OUT_FOR_DELIVERY, "杭州 西湖派送站", "Out for delivery"),
    (TrackingStatus.DELIVERED, "杭州 西湖区", "Delivered and signed for"),
)
SIGNERS: Final = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强")

TRACKING_NO_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
TrackingNo = Annotated[str, Path(pattern=TRACKING_NO_PATTERN)]
_TRACKING_NO: Final = re.compile(TRACKING_NO_PATTERN)


@dataclass(frozen=True)
class CarrierWords:
    """How each aggregator says one simulated step."""

    kuaidi100_code: str
    kuaidi100_name: str
    kuaidi100_context: str  # {location}, {signer}
    track17_status: str
    track17_sub_status: str
    track17_stage: str | None
    aftership_tag: str
    aftership_subtag: str


CARRIER_WORDS: Final[dict[TrackingStatus, CarrierWords]] = {
    TrackingStatus.INFO_RECEIVED: CarrierWords(
        "101", "已下单", "【{location}】商家已下单，等待快递员揽收",
        "InfoReceived", "InfoReceived", "InfoReceived", "InfoReceived", "InfoReceived_001",
    ),
    TrackingStatus.PICKED_UP: CarrierWords(
        "103", "已揽收", "【{location}】快递员已揽件",
        "InTransit", "InTransit_PickedUp", "PickedUp", "InTransit", "InTransit_002",
    ),
    TrackingStatus.IN_TRANSIT: CarrierWords(
        "1002", "干线", "快件已到达【{location}】，正发往下一站",
        "InTransit", "InTransit_Other", None, "InTransit", "InTransit_007",
    ),
    TrackingStatus.OUT_FOR_DELIVERY: CarrierWords(
        "5", "派件", "【{location}】快递员正在为您派件",
        "OutForDelivery", "OutForDelivery_Other", "OutForDelivery", "OutForDelivery", "OutForDelivery_001",
    ),
    TrackingStatus.DELIVERED: CarrierWords(
        "301", "本人签收", "快件已签收，签收人是{signer}，感谢使用",
        "Delivered", "Delivered_Other", "Delivered", "Delivered", "Delivered_003",
    ),
    # Off the happy path (journeys). Kuaidi100: advanced states of the resultv2=4 answer; 17TRACK v2.2: main
    # status, sub-status, milestone stage; AfterShip: tag and subtag.
    TrackingStatus.AVAILABLE_FOR_PICKUP: CarrierWords(
        "501", "投柜或驿站", "快件已存放至【{location}】，请及时取件",
        "AvailableForPickup", "AvailableForPickup_Other", "AvailableForPickup",
        "AvailableForPickup", "AvailableForPickup_001",
    ),
    TrackingStatus.ATTEMPT_FAILED: CarrierWords(  # nobody home: tried again the next day
        "204", "派件异常", "【{location}】快递员派件未成功，收件人不在，将于次日再次派送",
        "DeliveryFailure", "DeliveryFailure_NoBody", None, "AttemptFail", "AttemptFail_002",
    ),
    TrackingStatus.REFUSED: CarrierWords(
        "14", "拒签", "【{location}】收件人拒签，快件将退回寄件人",
        "Exception", "Exception_Rejected", None, "Exception", "Exception_003",
    ),
    TrackingStatus.RETURNING: CarrierWords(
        "6", "退回", "快件正在退回寄件人途中，已到达【{location}】",
        "Exception", "Exception_Returning", "Returning", "Exception", "Exception_010",
    ),
    TrackingStatus.RETURNED: CarrierWords(
        "4", "退签", "【{location}】快件已退回寄件人，退签完成",
        "Exception", "Exception_Returned", "Returned", "Exception", "Exception_011",
    ),
    TrackingStatus.EXCEPTION: CarrierWords(  # the address cannot be found: the parcel waits for the sender
        "2", "疑难", "【{location}】收件地址不详，快件暂无法派送，等待寄件人确认",
        "Exception", "Exception_NoBody", None, "Exception", "Exception_007",
    ),
}  # fmt: skip


# --- journeys --------------------------------------------------------------------------------------------
# The statuses a journey can use: those every shape (sim, Kuaidi100, 17TRACK, AfterShip) can say. PENDING and
# EXPIRED cannot be said by Kuaidi100 (no record is "no result"; it has no expiry state) and are refused.
JOURNEY_STATUSES: Final = frozenset(CARRIER_WORDS)
MAX_HOLD: Final = 1_000_000
MAX_STEPS: Final = 64
# (location, description) of a step that brings none.
DEFAULT_WORDING: Final[dict[TrackingStatus, tuple[str, str]]] = {status: (loc, text) for status, loc, text in STEPS} | {
    TrackingStatus.AVAILABLE_FOR_PICKUP: ("杭州 西湖区 菜鸟驿站", "Available for pickup at the parcel station"),
    TrackingStatus.ATTEMPT_FAILED: ("杭州 西湖派送站", "Delivery attempted: addressee not available"),
    TrackingStatus.REFUSED: ("杭州 西湖区", "Delivery refused by the addressee"),
    TrackingStatus.RETURNING: ("杭州 转运中心", "Returning to sender"),
    TrackingStatus.RETURNED: ("上海 浦东揽收网点", "Returned to sender"),
    TrackingStatus.EXCEPTION: ("杭州 西湖派送站", "Address unknown: held at the delivery station"),
}


class JourneyStep(BaseModel):
    """One step of a journey. `hold`: how many answers (query mode) / steps (time mode) it stays the newest;
    null: forever, so it must be the last step. An empty location or description takes DEFAULT_WORDING's."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: TrackingStatus
    hold: int | None = Field(1, ge=1, le=MAX_HOLD, strict=True)  # a JSON integer: not true, not "3"
    location: str = Field("", max_length=200)
    description: str = Field("", max_length=500)

    @field_validator("status")
    @classmethod
    def _sayable(cls, status: TrackingStatus) -> TrackingStatus:
        if status not in JOURNEY_STATUSES:
            sayable = ", ".join(sorted(JOURNEY_STATUSES))
            raise ValueError(f"{status} cannot be said in every carrier's words; use one of {sayable}")
        return status

    def worded(self) -> JourneyStep:
        location, description = DEFAULT_WORDING[self.status]
        return self.model_copy(
            update={"location": self.location or location, "description": self.description or description}
        )


def _step(status: TrackingStatus, hold: int | None = 1, description: str = "", location: str = "") -> JourneyStep:
    return JourneyStep(status=status, hold=hold, location=location, description=description).worded()


@dataclass(frozen=True)
class Journey:
    """A parcel's life: its steps in order, the first one being what the parcel shows when first seen. A preset
    also names its telling step (`pivot`): the one whose hold `POST /sim/journeys {"journey", "hold"}` sets."""

    steps: tuple[JourneyStep, ...]
    name: str | None = None
    pivot: int | None = None

    @property
    def statuses(self) -> list[TrackingStatus]:
        return [step.status for step in self.steps]

    def with_hold(self, hold: int | None) -> Journey:
        """The preset with its telling step held `hold` answers/steps; None: forever, later steps dropped."""
        if self.pivot is None:
            raise ValueError(f"the {self.name or 'explicit'} journey has no step to hold")
        steps = list(self.steps)
        steps[self.pivot] = steps[self.pivot].model_copy(update={"hold": hold})
        return replace(self, steps=tuple(steps if hold is not None else steps[: self.pivot + 1]))


_S = TrackingStatus
_HAPPY_STEPS: Final = tuple(_step(status) for status, _, _ in STEPS)
_TO_OUT_FOR_DELIVERY: Final = _HAPPY_STEPS[:4]  # INFO_RECEIVED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY
JourneyName = Literal["happy", "backwards", "stall", "delivery_failure", "refusal", "return"]
STALL_HOLD: Final = 96  # the stall preset's default: four days of hourly polls, past the 3-day stall window
JOURNEYS: Final[dict[str, Journey]] = {
    "happy": Journey(_HAPPY_STEPS, "happy"),
    # out for delivery, then a sorting-centre scan is the newest event, then delivered
    "backwards": Journey(
        (
            *_TO_OUT_FOR_DELIVERY,
            _step(_S.IN_TRANSIT, description="Arrived at sorting centre (missorted, re-routed)"),
            _HAPPY_STEPS[4],
        ),
        "backwards",
        pivot=4,
    ),
    # no news for STALL_HOLD answers/steps while in transit, then on to delivered
    "stall": Journey(
        (*_HAPPY_STEPS[:2], _HAPPY_STEPS[2].model_copy(update={"hold": STALL_HOLD}), *_HAPPY_STEPS[3:]),
        "stall",
        pivot=2,
    ),
    # nobody home: the next day's second attempt succeeds
    "delivery_failure": Journey(
        (
            *_TO_OUT_FOR_DELIVERY,
            _step(_S.ATTEMPT_FAILED, description="Delivery attempted: addressee not available, next attempt tomorrow"),
            _step(_S.OUT_FOR_DELIVERY, description="Out for delivery (second attempt)"),
            _HAPPY_STEPS[4],
        ),
        "delivery_failure",
        pivot=4,
    ),
    "refusal": Journey(
        (*_TO_OUT_FOR_DELIVERY, _step(_S.REFUSED), _step(_S.RETURNING), _step(_S.RETURNED)),
        "refusal",
        pivot=4,
    ),
    # the address cannot be found on the way: back to the sender
    "return": Journey(
        (*_HAPPY_STEPS[:3], _step(_S.EXCEPTION), _step(_S.RETURNING), _step(_S.RETURNED)),
        "return",
        pivot=3,
    ),
}
HAPPY: Final = JOURNEYS["happy"]


class JourneySpec(BaseModel):
    """POST /sim/journeys: either a preset (`journey`, with an optional `hold` for its telling step: absent is the
    preset's own, null is forever) or explicit `steps`."""

    model_config = ConfigDict(extra="forbid")
    tracking_no: str = Field(pattern=TRACKING_NO_PATTERN)
    journey: JourneyName | None = None
    hold: int | None = Field(None, ge=1, le=MAX_HOLD, strict=True)
    steps: list[JourneyStep] | None = Field(None, min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _one_journey(self) -> JourneySpec:
        if (self.journey is None) == (self.steps is None):
            raise ValueError("give either `journey` (a preset) or `steps`, not both or neither")
        if self.steps is not None:
            if "hold" in self.model_fields_set:
                raise ValueError("`hold` goes with a preset; each of `steps` has its own")
            if any(step.hold is None for step in self.steps[:-1]):
                raise ValueError("only the last step can be held forever (hold null): later ones would never come")
        elif "hold" in self.model_fields_set and JOURNEYS[str(self.journey)].pivot is None:
            raise ValueError(f"the {self.journey} journey has no step to hold")
        return self

    def to_journey(self) -> Journey:
        if self.steps is not None:
            return Journey(tuple(step.worded() for step in self.steps))
        preset = JOURNEYS[str(self.journey)]
        return preset.with_hold(self.hold) if "hold" in self.model_fields_set else preset


class JourneyView(BaseModel):
    tracking_no: str
    journey: str | None  # the preset's name; null for explicit steps
    steps: list[JourneyStep]

    @classmethod
    def of(cls, tracking_no: str, journey: Journey) -> JourneyView:
        return cls(tracking_no=tracking_no, journey=journey.name, steps=list(journey.steps))


@dataclass(frozen=True)
class SimCredentials:
    """What the aggregator routes accept. The defaults are Settings' defaults (a test checks they agree)."""

    kuaidi100_customer: str = "SIMCUSTOMER"
    kuaidi100_key: str = "sim-kuaidi100-key"
    track17_key: str = "sim-17track-key"
    aftership_key: str = "sim-aftership-key"

    @classmethod
    def from_settings(cls, settings: Settings) -> SimCredentials:
        return cls(
            kuaidi100_customer=settings.carrier_kuaidi100_customer,
            kuaidi100_key=settings.carrier_kuaidi100_key,
            track17_key=settings.carrier_17track_key,
            aftership_key=settings.carrier_aftership_key,
        )


def signer_for(tracking_no: str) -> str:
    """Same parcel, same signer, in every process (built-in hash() is salted per process)."""
    digest = hashlib.sha256(tracking_no.encode()).digest()
    return SIGNERS[digest[0] % len(SIGNERS)]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Parcel:
    tracking_no: str
    first_seen: datetime
    reached: list[tuple[JourneyStep, datetime]]  # the events shown so far, oldest first, with their times
    floor: datetime  # time mode: no step is stamped before this (the last journey change)
    gets: int = 0
    held: int = 0  # query mode: answers that have shown the newest step


class ParcelBook:
    """All parcels, in memory. Handlers may run on several threads, hence the lock."""

    def __init__(self, step_seconds: float, advance: str, clock: Callable[[], datetime] = _utcnow) -> None:
        if advance not in ADVANCE_MODES:
            raise ValueError(f"advance must be one of {ADVANCE_MODES}, not {advance!r}")
        if step_seconds < 0:
            raise ValueError("step_seconds must be >= 0")
        self.step_seconds = step_seconds
        self.advance = advance
        self._clock = clock
        self._lock = threading.Lock()
        self._parcels: dict[str, _Parcel] = {}
        self._journeys: dict[str, Journey] = {}

    def register(self, tracking_no: str) -> tuple[SimTrackResponse, bool]:
        """Pre-register without moving the parcel; returns (view, created)."""
        with self._lock:
            created = tracking_no not in self._parcels
            parcel = self._get_or_create(tracking_no)
            self._catch_up(parcel)
            return self._view(parcel), created

    def known(self, tracking_no: str) -> bool:
        with self._lock:
            return tracking_no in self._parcels

    def query(self, tracking_no: str) -> SimTrackResponse:
        with self._lock:
            parcel = self._get_or_create(tracking_no)
            parcel.gets += 1
            if self.advance == "query":
                self._answer(parcel)
            else:
                self._catch_up(parcel)
            return self._view(parcel)

    def journey(self, tracking_no: str) -> Journey:
        with self._lock:
            return self._journeys.get(tracking_no, HAPPY)

    def set_journey(self, tracking_no: str, journey: Journey) -> bool:
        """Give the parcel (seen or not) a journey; True when it replaced one. A parcel already seen keeps the
        events it has shown and goes on with the journey's steps after them; its newest step's hold counts from
        when it was reached, but nothing the new journey brings is stamped before the change."""
        with self._lock:
            parcel = self._parcels.get(tracking_no)
            if parcel is not None:
                self._catch_up(parcel)  # what the old journey brought until now stays as it was
                parcel.floor = self._clock()
            replaced = tracking_no in self._journeys
            self._journeys[tracking_no] = journey
            return replaced

    def clear_journey(self, tracking_no: str) -> bool:
        """Back to the happy journey (same rules as set_journey); True when there was a journey."""
        with self._lock:
            if tracking_no not in self._journeys:
                return False
            parcel = self._parcels.get(tracking_no)
            if parcel is not None:
                self._catch_up(parcel)
                parcel.floor = self._clock()
            del self._journeys[tracking_no]
            return True

    def _get_or_create(self, tracking_no: str) -> _Parcel:
        parcel = self._parcels.get(tracking_no)
        if parcel is None:
            now = self._clock()
            first = self._journeys.get(tracking_no, HAPPY).steps[0]
            parcel = _Parcel(tracking_no=tracking_no, first_seen=now, reached=[(first, now)], floor=now)
            self._parcels[tracking_no] = parcel
        return parcel

    def _next(self, parcel: _Parcel) -> tuple[int | None, JourneyStep | None]:
        """The newest step's hold under the parcel's journey (None: forever), and the step after it."""
        steps = self._journeys.get(parcel.tracking_no, HAPPY).steps
        newest = len(parcel.reached) - 1
        if newest + 1 >= len(steps):
            return None, None
        return steps[newest].hold, steps[newest + 1]

    def _answer(self, parcel: _Parcel) -> None:
        """Query mode, once per answer: the newest step moves on once it has been shown `hold` times. With the
        happy journey the k-th GET shows step k-1, whether or not the parcel was pre-registered."""
        hold, following = self._next(parcel)
        if following is not None and hold is not None and parcel.held >= hold:
            parcel.reached.append((following, self._clock()))
            parcel.held = 1
        else:
            parcel.held += 1

    def _catch_up(self, parcel: _Parcel) -> None:
        """Time mode: every step that has come due since, stamped when it was due, not when someone looked."""
        if self.advance != "time":
            return
        now = self._clock()
        step = timedelta(seconds=self.step_seconds)
        while True:
            hold, following = self._next(parcel)
            if following is None or hold is None:
                return
            due = max(parcel.reached[-1][1] + step * hold, parcel.floor)
            if due > now:
                return
            parcel.reached.append((following, due))

    def _view(self, parcel: _Parcel) -> SimTrackResponse:
        events = [
            SimEvent(status=step.status, at=at, location=step.location, description=step.description)
            for step, at in parcel.reached
        ]
        delivered = events[-1].status is TrackingStatus.DELIVERED  # a refused or returned parcel has no signer
        return SimTrackResponse(
            carrier="sim",
            tracking_no=parcel.tracking_no,
            status=events[-1].status,
            events=events,
            signed_by=signer_for(parcel.tracking_no) if delivered else None,
            signed_at=events[-1].at if delivered else None,
        )


class RegisterParcel(BaseModel):
    tracking_no: str = Field(pattern=TRACKING_NO_PATTERN)


# --- faults ----------------------------------------------------------------------------------------------
FaultKind = Literal["server_error", "rate_limit", "timeout", "malformed", "unknown"]


class FaultSpec(BaseModel):
    """POST /sim/faults. `times`: how many answers about the parcel it spoils (null: until deleted)."""

    tracking_no: str = Field(pattern=TRACKING_NO_PATTERN)
    kind: FaultKind
    times: int | None = Field(1, ge=1)
    status_code: int = Field(503, ge=500, le=599)  # server_error
    retry_after: int | None = Field(30, ge=0)  # rate_limit: the Retry-After header in seconds (null: none)
    delay_seconds: float = Field(5.0, ge=0, le=60)  # timeout: the answer is a 504, this late


class FaultBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, FaultSpec] = {}
        self._left: dict[str, int | None] = {}

    def set(self, spec: FaultSpec) -> None:
        with self._lock:
            self._faults[spec.tracking_no] = spec
            self._left[spec.tracking_no] = spec.times

    def clear(self, tracking_no: str) -> bool:
        with self._lock:
            self._left.pop(tracking_no, None)
            return self._faults.pop(tracking_no, None) is not None

    def take(self, tracking_no: str) -> FaultSpec | None:
        """The parcel's fault for this answer, used up by one."""
        with self._lock:
            spec = self._faults.get(tracking_no)
            if spec is None:
                return None
            left = self._left[tracking_no]
            if left is not None:
                if left <= 1:
                    self._faults.pop(tracking_no)
                    self._left.pop(tracking_no)
                else:
                    self._left[tracking_no] = left - 1
            return spec


async def _http_fault(spec: FaultSpec) -> Response:
    if spec.kind == "server_error":
        return JSONResponse({"message": "simulated server error"}, status_code=spec.status_code)
    if spec.kind == "rate_limit":
        headers = {"Retry-After": str(spec.retry_after)} if spec.retry_after is not None else None
        return JSONResponse({"message": "Too Many Requests"}, status_code=429, headers=headers)
    if spec.kind == "timeout":
        await asyncio.sleep(spec.delay_seconds)
        return JSONResponse({"message": "upstream timed out"}, status_code=504)
    return Response(content=b'{"message": "ok", "data": [{"time": ', media_type="application/json")  # malformed


async def _faults_for(book: FaultBook, numbers: Sequence[str]) -> tuple[Response | None, set[str]]:
    """An HTTP-level fault answer (the first one among `numbers`), and the numbers to report as unknown."""
    answer: Response | None = None
    unknown: set[str] = set()
    for number in numbers:
        spec = book.take(number)
        if spec is None:
            continue
        if spec.kind == "unknown":
            unknown.add(number)
        elif answer is None:
            answer = await _http_fault(spec)
    return answer, unknown


# --- the aggregators' shapes -----------------------------------------------------------------------------
def _china_time(at: datetime) -> str:
    return at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def kuaidi100_answer(view: SimTrackResponse, company: str, *, ascending: bool) -> kuaidi100.Kuaidi100Answer:
    traces = [
        kuaidi100.Kuaidi100Trace(
            time=_china_time(event.at),
            ftime=_china_time(event.at),
            context=CARRIER_WORDS[event.status].kuaidi100_context.format(
                location=event.location, signer=view.signed_by or ""
            ),
            location=event.location,
            areaName=event.location,
            status=CARRIER_WORDS[event.status].kuaidi100_name,
            statusCode=CARRIER_WORDS[event.status].kuaidi100_code,
        )
        for event in view.events
    ]
    return kuaidi100.Kuaidi100Answer(
        message="ok",
        nu=view.tracking_no,
        com=company,
        ischeck="1" if view.status is TrackingStatus.DELIVERED else "0",
        condition="F00",
        status="200",
        state=CARRIER_WORDS[view.status].kuaidi100_code,
        data=traces if ascending else traces[::-1],
    )


def kuaidi100_push_form(view: SimTrackResponse, company: str, salt: str) -> dict[str, str]:
    """The form Kuaidi100 POSTs to a subscriber's callback: `param` (newest trace first) and, with a salt,
    `sign` = MD5(param + salt) upper-case."""
    final = view.status in (TrackingStatus.DELIVERED, TrackingStatus.RETURNED)
    push = {
        "status": "shutdown" if final else "polling",
        "billstatus": "",
        "message": "",
        "lastResult": kuaidi100_answer(view, company, ascending=False).model_dump(mode="json", exclude_none=True),
    }
    param = json.dumps(push, ensure_ascii=False, separators=(",", ":"))
    return {"param": param, "sign": kuaidi100.push_sign(param, salt)} if salt else {"param": param}


@dataclass
class _Subscription:
    """A Kuaidi100 subscription: where to push, signed with which salt, and what was pushed last."""

    callback: str
    company: str
    salt: str
    pushed: tuple[int, TrackingStatus] | None = None


async def _push_subscriptions(
    book: ParcelBook, subscriptions: dict[str, _Subscription], interval: float, stats: Counter[str]
) -> None:
    """Kuaidi100's side of a subscription: whenever a subscribed parcel has moved, POST it to the callback
    (re-sent on the next round until the callback answers 200, as Kuaidi100 re-sends)."""
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            await asyncio.sleep(interval)
            for number, sub in list(subscriptions.items()):
                view, _ = book.register(number)  # its state now, without counting as a query
                mark = (len(view.events), view.status)
                if mark == sub.pushed:
                    continue
                try:
                    answer = await http.post(sub.callback, data=kuaidi100_push_form(view, sub.company, sub.salt))
                except httpx.HTTPError:
                    continue
                stats[f"push {answer.status_code}"] += 1
                if answer.status_code == 200:
                    sub.pushed = mark


def _track17_event(view: SimTrackResponse, event: SimEvent) -> track17.Track17Event:
    words = CARRIER_WORDS[event.status]
    description = event.description
    if event.status is TrackingStatus.DELIVERED and view.signed_by:
        description = f"Delivered, signed for by {view.signed_by}"
    return track17.Track17Event(
        time_iso=event.at.astimezone(CHINA_TIME).isoformat(timespec="seconds"),
        time_utc=event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        description=description,
        location=event.location,
        stage=words.track17_stage,
        sub_status=words.track17_sub_status,
    )


def track17_accepted(view: SimTrackResponse) -> track17.Track17Accepted:
    events = [_track17_event(view, event) for event in reversed(view.events)]  # newest first
    words = CARRIER_WORDS[view.status]
    return track17.Track17Accepted(
        number=view.tracking_no,
        carrier=3011,
        track_info=track17.Track17TrackInfo(
            latest_status=track17.Track17LatestStatus(status=words.track17_status, sub_status=words.track17_sub_status),
            latest_event=events[0] if events else None,
            tracking=track17.Track17Tracking(
                providers=[track17.Track17Provider(provider={"key": 3011, "name": "orderflow sim"}, events=events)]
            ),
        ),
    )


def aftership_tracking(view: SimTrackResponse, slug: str) -> AfterShipTracking:
    words = CARRIER_WORDS[view.status]
    return AfterShipTracking(
        id=hashlib.sha256(f"{slug}/{view.tracking_no}".encode()).hexdigest()[:24],
        slug=slug,
        tracking_number=view.tracking_no,
        tag=words.aftership_tag,
        subtag=words.aftership_subtag,
        subtag_message=view.events[-1].description,
        signed_by=view.signed_by,
        shipment_delivery_date=view.signed_at.isoformat(timespec="seconds") if view.signed_at else None,
        checkpoints=[
            AfterShipCheckpoint(
                checkpoint_time=event.at.astimezone(CHINA_TIME).isoformat(timespec="seconds"),
                created_at=event.at.astimezone(UTC).isoformat(timespec="seconds"),
                message=event.description,
                location=event.location,
                tag=CARRIER_WORDS[event.status].aftership_tag,
                subtag=CARRIER_WORDS[event.status].aftership_subtag,
            )
            for event in view.events
        ],
    )


def _form(raw: bytes) -> dict[str, str]:
    try:
        return {key: values[0] for key, values in parse_qs(raw.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        return {}


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _kuaidi100_fail(code: str, message: str) -> JSONResponse:
    return JSONResponse({"result": False, "returnCode": code, "message": message})


def _track17_fail(http_status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "data": {"errors": [{"code": code, "message": message}]}}, status_code=http_status
    )


def _aftership_meta(http_status: int, code: int, message: str, type_: str, data: object = None) -> JSONResponse:
    return JSONResponse(
        {"meta": {"code": code, "message": message, "type": type_}, "data": data or {}}, status_code=http_status
    )


class _Track17Number(BaseModel):
    number: str


_TRACK17_NUMBERS: Final = TypeAdapter(list[_Track17Number])


def create_app(
    step_seconds: float,
    advance: str = "time",
    *,
    clock: Callable[[], datetime] = _utcnow,
    credentials: SimCredentials | None = None,
) -> FastAPI:
    book = ParcelBook(step_seconds, advance, clock)
    faults = FaultBook()
    creds = credentials or SimCredentials()
    subscriptions: dict[str, _Subscription] = {}  # kuaidi100 number → where its pushes go
    app = FastAPI(title="orderflow carrier simulator", version="1")
    app.include_router(sms_gateway_router())  # the SMS gateway customers' texts go through: /sms/messages
    app.include_router(payment_provider_router())  # the payment provider refunds are asked of: /pay/refunds
    app.state.book = book
    app.state.faults = faults
    app.state.subscriptions = subscriptions
    app.state.pusher = None
    pushes: Counter[str] = Counter()  # pushes sent to subscribers, per answer status
    calls: Counter[str] = Counter()  # carrier API calls per route (not /sim/* control routes), for tests + bench
    app.state.calls = calls

    @app.middleware("http")
    async def count_calls(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        if path.startswith(("/kuaidi100", "/track17", "/aftership", "/sim/v1/")):
            calls[f"{request.method} {path}"] += 1
        return response

    @app.get("/sim/stats")
    async def stats() -> dict[str, Any]:
        """Carrier API calls answered so far, per route (a counter: take differences)."""
        return {"calls": dict(calls), "total": sum(calls.values()), "pushes": dict(pushes)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str | float]:
        return {"status": "ok", "advance": book.advance, "step_seconds": book.step_seconds}

    @app.get("/sim/v1/track/{tracking_no}", response_model=SimTrackResponse)
    async def track(tracking_no: TrackingNo) -> Response | SimTrackResponse:
        fault, unknown = await _faults_for(faults, [tracking_no])
        if fault is not None:
            return fault
        if unknown:
            return JSONResponse({"detail": "unknown parcel"}, status_code=404)
        return book.query(tracking_no)

    @app.post("/sim/parcels", status_code=201)
    async def register(body: RegisterParcel, response: Response) -> SimTrackResponse:
        view, created = book.register(body.tracking_no)
        if not created:
            response.status_code = 200
        return view

    @app.post("/sim/faults", status_code=201)
    async def set_fault(spec: FaultSpec) -> FaultSpec:
        faults.set(spec)
        return spec

    @app.delete("/sim/faults/{tracking_no}", status_code=204)
    async def clear_fault(tracking_no: TrackingNo) -> Response:
        faults.clear(tracking_no)
        return Response(status_code=204)

    @app.get("/sim/journeys")
    async def presets() -> dict[str, list[JourneyStep]]:
        return {name: list(journey.steps) for name, journey in JOURNEYS.items()}

    @app.post("/sim/journeys", status_code=201)
    async def set_journey(spec: JourneySpec, response: Response) -> JourneyView:
        journey = spec.to_journey()
        if book.set_journey(spec.tracking_no, journey):
            response.status_code = 200  # replaced the parcel's journey
        return JourneyView.of(spec.tracking_no, journey)

    @app.get("/sim/journeys/{tracking_no}")
    async def get_journey(tracking_no: TrackingNo) -> JourneyView:
        return JourneyView.of(tracking_no, book.journey(tracking_no))

    @app.delete("/sim/journeys/{tracking_no}", status_code=204)
    async def clear_journey(tracking_no: TrackingNo) -> Response:
        book.clear_journey(tracking_no)
        return Response(status_code=204)

    # --- Kuaidi100: form posts, answers always HTTP 200 (failures say result=false) ---
    @app.post("/kuaidi100" + kuaidi100.QUERY_PATH)
    async def kuaidi100_query(request: Request) -> Response:
        form = _form(await request.body())
        param = form.get("param", "")
        expected = kuaidi100.query_sign(param, creds.kuaidi100_key, creds.kuaidi100_customer)
        if form.get("customer") != creds.kuaidi100_customer or not hmac.compare_digest(
            form.get("sign", "").encode(), expected.encode()
        ):
            return _kuaidi100_fail("503", "验证签名失败")
        query = _json_object(param)
        number, company = str(query.get("num", "")), str(query.get("com", ""))
        if not company or not _TRACKING_NO.match(number):
            return _kuaidi100_fail("400", "提交的数据不完整，或者贵公司没授权")
        fault, unknown = await _faults_for(faults, [number])
        if fault is not None:
            return fault
        if unknown:
            return _kuaidi100_fail(kuaidi100.NO_RESULT, "查询无结果，请隔段时间再查")
        view = book.query(number)
        answer = kuaidi100_answer(view, company, ascending=query.get("order") == "asc")
        return JSONResponse(answer.model_dump(mode="json", exclude_none=True))

    @app.post("/kuaidi100" + kuaidi100.SUBSCRIBE_PATH)
    async def kuaidi100_subscribe(request: Request) -> Response:
        param = _json_object(_form(await request.body()).get("param", ""))
        if param.get("key") != creds.kuaidi100_key:
            return _kuaidi100_fail("600", "您不是合法的订阅者（即授权Key出错）")
        number = str(param.get("number", ""))
        parameters = param.get("parameters")
        callback = str(parameters.get("callbackurl", "")) if isinstance(parameters, dict) else ""
        if not _TRACKING_NO.match(number) or not callback:
            return _kuaidi100_fail("700", "订阅方的订阅数据存在错误")
        if number in subscriptions:
            return _kuaidi100_fail("501", "重复订阅")
        salt = str(parameters.get("salt", "")) if isinstance(parameters, dict) else ""
        subscriptions[number] = _Subscription(callback, str(param.get("company", "")), salt)
        book.register(number)
        if app.state.pusher is None:  # pushes start with the first subscription (in the server's own loop)
            interval = min(max(book.step_seconds / 2, 0.05), 1.0)
            app.state.pusher = asyncio.create_task(_push_subscriptions(book, subscriptions, interval, pushes))
        return JSONResponse({"result": True, "returnCode": "200", "message": "提交成功"})

    # --- 17TRACK: JSON lists of at most 40 numbers, 17token header ---
    async def _track17_numbers(request: Request) -> list[str] | JSONResponse:
        if not hmac.compare_digest(request.headers.get("17token", "").encode(), creds.track17_key.encode()):
            return _track17_fail(401, -18010002, "Invalid security key.")
        try:
            items = _TRACK17_NUMBERS.validate_json(await request.body())
        except ValidationError:
            return _track17_fail(200, -18010001, "The request body is invalid.")
        if len(items) > track17.BATCH_LIMIT:
            return _track17_fail(200, -18010013, f"At most {track17.BATCH_LIMIT} numbers per request.")
        return [item.number for item in items]

    def _rejected(number: str, code: int, message: str) -> dict[str, object]:
        return {"number": number, "error": {"code": code, "message": message}}

    @app.post("/track17/track/v2.2/register")
    async def track17_register(request: Request) -> Response:
        numbers = await _track17_numbers(request)
        if isinstance(numbers, JSONResponse):
            return numbers
        fault, unknown = await _faults_for(faults, numbers)
        if fault is not None:
            return fault
        accepted: list[dict[str, object]] = []
        rejected: list[dict[str, object]] = []
        for number in numbers:
            if number in unknown or not _TRACKING_NO.match(number):
                rejected.append(_rejected(number, track17.INVALID_NUMBER, f"The format of '{number}' is invalid."))
            elif book.known(number):
                rejected.append(_rejected(number, track17.ALREADY_REGISTERED, f"'{number}' is already registered."))
            else:
                book.register(number)
                accepted.append({"origin": 1, "number": number, "carrier": 3011})
        return JSONResponse({"code": 0, "data": {"accepted": accepted, "rejected": rejected}})

    @app.post("/track17/track/v2.2/gettrackinfo")
    async def track17_gettrackinfo(request: Request) -> Response:
        numbers = await _track17_numbers(request)
        if isinstance(numbers, JSONResponse):
            return numbers
        fault, unknown = await _faults_for(faults, numbers)
        if fault is not None:
            return fault
        accepted: list[dict[str, Any]] = []
        rejected: list[dict[str, object]] = []
        for number in numbers:
            if number in unknown or not book.known(number):
                rejected.append(_rejected(number, track17.NOT_REGISTERED, f"'{number}' is not registered."))
            else:
                accepted.append(track17_accepted(book.query(number)).model_dump(mode="json", exclude_none=True))
        return JSONResponse({"code": 0, "data": {"accepted": accepted, "rejected": rejected}})

    # --- AfterShip: as-api-key header, meta/data envelope ---
    def _aftership_denied(request: Request) -> JSONResponse | None:
        if hmac.compare_digest(request.headers.get("as-api-key", "").encode(), creds.aftership_key.encode()):
            return None
        return _aftership_meta(401, 401, "Invalid API key.", "Unauthorized")

    @app.get("/aftership/v4/trackings/{slug}/{tracking_no}")
    async def aftership_get(request: Request, slug: str, tracking_no: TrackingNo) -> Response:
        if (denied := _aftership_denied(request)) is not None:
            return denied
        fault, unknown = await _faults_for(faults, [tracking_no])
        if fault is not None:
            return fault
        if unknown or not book.known(tracking_no):
            return _aftership_meta(404, 4004, "Tracking does not exist.", "NotFound")
        tracking = aftership_tracking(book.query(tracking_no), slug)
        return _aftership_meta(200, 200, "", "Success", {"tracking": tracking.model_dump(mode="json")})

    @app.post("/aftership/v4/trackings")
    async def aftership_create(request: Request) -> Response:
        if (denied := _aftership_denied(request)) is not None:
            return denied
        body = _json_object((await request.body()).decode(errors="replace")).get("tracking")
        slug = str(body.get("slug", "")) if isinstance(body, dict) else ""
        number = str(body.get("tracking_number", "")) if isinstance(body, dict) else ""
        fault, unknown = await _faults_for(faults, [number])
        if fault is not None:
            return fault
        if unknown or not slug or not _TRACKING_NO.match(number):
            return _aftership_meta(400, 4005, "The value of `tracking_number` is invalid.", "BadRequest")
        view, created = book.register(number)
        tracking = {"tracking": aftership_tracking(view, slug).model_dump(mode="json")}
        if not created:
            return _aftership_meta(400, 4003, "Tracking already exists.", "BadRequest", tracking)
        return _aftership_meta(201, 201, "", "Created", tracking)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    from core.config import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(description="orderflow carrier simulator (carrier code `sim`)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.simulator_port)
    parser.add_argument("--step-seconds", type=float, default=settings.simulator_step_seconds)
    parser.add_argument("--advance", choices=ADVANCE_MODES, default="time")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--smtp-port", type=int, default=0, help="also play the mail server here (0: do not)")
    args = parser.parse_args(argv)
    app = create_app(args.step_seconds, args.advance, credentials=SimCredentials.from_settings(settings))
    sink = SmtpSink(args.host, args.smtp_port) if args.smtp_port else None
    if sink is not None:
        sink.start()

        @app.get("/mail/messages")
        async def mail_messages() -> list[dict[str, Any]]:
            """What the mail sink received, oldest first."""
            return [
                {"to": list(m.rcpt_tos), "subject": m.subject, "message_id": m.message_id, "text": m.text}
                for m in sink.messages
            ]

    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    finally:
        if sink is not None:
            sink.stop()


if __name__ == "__main__":
    main()
