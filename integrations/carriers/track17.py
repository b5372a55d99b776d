"""17TRACK-style carrier aggregator (carrier code `17track`), API v2: register numbers, query in batches, push.

    register      POST {base}/register       [{"number": ...}, ...]   at most 40 numbers a call
    gettrackinfo  POST {base}/gettrackinfo   [{"number": ...}, ...]   at most 40 numbers a call
    both answer   {"code": 0, "data": {"accepted": [...], "rejected": [{"number", "error": {"code", "message"}}]}}
    push          {"event": "TRACKING_UPDATED" | "TRACKING_STOPPED", "data": {"number", "track_info"}} with
                  header `sign` = SHA-256 hex of (raw body + "/" + key)

Every call carries the key in the `17token` header. A number must be registered before it can be queried:
`track`/`track_many` register the numbers 17TRACK reports as unregistered and ask once more.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from integrations.carriers.base import CarrierError, UnknownParcel
from integrations.carriers.mapping import (
    extract_signer,
    iso_to_utc,
    json_body,
    raise_if_unavailable,
    track17_status,
    transport_error,
)
from models.status import TrackingStatus
from models.tracking import TrackingEventIn, TrackingSnapshot

CODE: Final = "17track"
BATCH_LIMIT: Final = 40
SIGNATURE_HEADER: Final = "sign"
# Error codes of a rejected number.
ALREADY_REGISTERED: Final = -18019901
NOT_REGISTERED: Final = -18019902
INVALID_NUMBER: Final = -18010012


class Track17Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    time_iso: str | None = None
    time_utc: str | None = None
    description: str = ""
    location: str | None = None
    stage: str | None = None
    sub_status: str | None = None


class Track17Provider(BaseModel):
    model_config = ConfigDict(extra="ignore")
    provider: dict[str, Any] | None = None
    events: list[Track17Event] = []


class Track17Tracking(BaseModel):
    model_config = ConfigDict(extra="ignore")
    providers: list[Track17Provider] = []


class Track17LatestStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str
    sub_status: str | None = None
    sub_status_descr: str | None = None


class Track17TrackInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    latest_status: Track17LatestStatus
    latest_event: Track17Event | None = None
    tracking: Track17Tracking = Track17Tracking()


class Track17Accepted(BaseModel):
    model_config = ConfigDict(extra="ignore")
    number: str
    carrier: int | None = None
    tag: str | None = None
    track_info: Track17TrackInfo | None = None


class Track17Error(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: int
    message: str = ""


class Track17Rejected(BaseModel):
    model_config = ConfigDict(extra="ignore")
    number: str
    error: Track17Error


class Track17Data(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accepted: list[Track17Accepted] = []
    rejected: list[Track17Rejected] = []
    errors: list[Track17Error] = []


class Track17Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: int
    data: Track17Data = Track17Data()


class Track17Push(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: str
    data: Track17Accepted


def sign(body: bytes, key: str) -> str:
    return hashlib.sha256(body + b"/" + key.encode()).hexdigest()


def verify_push_signature(body: bytes, signature: str | None, key: str) -> bool:
    """17TRACK signs a push with SHA-256 of (raw body + "/" + key), hex. No key or no signature: refused."""
    if not key or not signature:
        return False
    return hmac.compare_digest(sign(body, key).encode(), signature.strip().lower().encode())


def parse_push(body: bytes | str) -> TrackingSnapshot | None:
    """A push body as a snapshot; None for events that carry no tracking (TRACKING_STOPPED)."""
    try:
        push = Track17Push.model_validate_json(body)
    except ValidationError as exc:
        raise CarrierError(f"{CODE}: malformed push: {exc.error_count()} errors") from exc
    if push.data.track_info is None:
        return None
    return to_snapshot(push.data.number, push.data.track_info)


def _event_time(event: Track17Event) -> datetime:
    # time_utc is the same instant in UTC; time_iso may lack an offset for some carriers.
    for text in (event.time_utc, event.time_iso):
        if text:
            return iso_to_utc(text)
    raise ValueError("event without a time")


def to_snapshot(number: str, info: Track17TrackInfo) -> TrackingSnapshot:
    seen: set[tuple[datetime, str]] = set()
    events: list[TrackingEventIn] = []
    try:
        for provider in info.tracking.providers:  # origin and destination carrier: one journey
            for raw in reversed(provider.events):  # newest first on the wire
                at = _event_time(raw)
                if (at, raw.description) in seen:
                    continue
                seen.add((at, raw.description))
                events.append(
                    TrackingEventIn(
                        status=track17_status(None, raw.sub_status, raw.stage),
                        at=at,
                        location=raw.location or "",
                        description=raw.description,
                    )
                )
    except ValueError as exc:
        raise CarrierError(f"{CODE}: unreadable event for {number!r}: {exc}") from exc
    events.sort(key=lambda event: event.at)
    status = track17_status(info.latest_status.status, info.latest_status.sub_status)
    signed_by: str | None = None
    signed_at: datetime | None = None
    if status is TrackingStatus.DELIVERED:
        delivered = [e for e in events if e.status is TrackingStatus.DELIVERED] or events[-1:]
        signed_at = delivered[-1].at if delivered else None
        signed_by = next((name for e in reversed(delivered) if (name := extract_signer(e.description))), None)
    return TrackingSnapshot(
        carrier=CODE, tracking_no=number, status=status, events=events, signed_by=signed_by, signed_at=signed_at
    )


@dataclass
class Track17Batch:
    """Snapshots of the numbers 17TRACK knows, in the order asked; the numbers it does not know."""

    snapshots: list[TrackingSnapshot] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def chunks(numbers: Sequence[str], size: int = BATCH_LIMIT) -> Iterable[Sequence[str]]:
    for start in range(0, len(numbers), size):
        yield numbers[start : start + size]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Track17Client:
    code: str = CODE
    batch_limit: int = BATCH_LIMIT

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, *, key: str, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._key = key
        self._clock = clock

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        batch = await self.track_batch([tracking_no])
        if not batch.snapshots:
            raise UnknownParcel(f"{CODE}: unknown parcel {tracking_no!r}")
        return batch.snapshots[0]

    async def track_many(self, numbers: Sequence[str]) -> list[TrackingSnapshot]:
        """One snapshot per number 17TRACK knows, in the order asked; ≤ 40 numbers per HTTP call."""
        return (await self.track_batch(numbers)).snapshots

    async def track_batch(self, numbers: Sequence[str]) -> Track17Batch:
        wanted = list(dict.fromkeys(n.strip() for n in numbers if n.strip()))
        found: dict[str, TrackingSnapshot] = {}
        unregistered: list[str] = []
        for chunk in chunks(wanted):
            answer = await self._call("gettrackinfo", chunk)
            found.update(self._accepted(answer))
            unregistered += [r.number for r in answer.data.rejected if r.error.code == NOT_REGISTERED]
        if unregistered:
            refused = set(await self.register(unregistered))
            for chunk in chunks([n for n in unregistered if n not in refused]):
                found.update(self._accepted(await self._call("gettrackinfo", chunk)))
        return Track17Batch(
            snapshots=[found[n] for n in wanted if n in found], unknown=[n for n in wanted if n not in found]
        )

    async def register(self, numbers: Sequence[str]) -> list[str]:
        """Register numbers for tracking (≤ 40 per call); returns the numbers 17TRACK refused."""
        refused: list[str] = []
        for chunk in chunks(list(dict.fromkeys(numbers))):
            answer = await self._call("register", chunk)
            refused += [r.number for r in answer.data.rejected if r.error.code != ALREADY_REGISTERED]
        return refused

    @staticmethod
    def _accepted(answer: Track17Answer) -> dict[str, TrackingSnapshot]:
        return {a.number: to_snapshot(a.number, a.track_info) for a in answer.data.accepted if a.track_info}

    async def _call(self, action: str, numbers: Sequence[str]) -> Track17Answer:
        if len(numbers) > BATCH_LIMIT:
            raise ValueError(f"{CODE}: at most {BATCH_LIMIT} numbers per call, not {len(numbers)}")
        url = f"{self._base_url}/{action}"
        try:
            response = await self._http.post(url, json=[{"number": n} for n in numbers], headers={"17token": self._key})
        except httpx.HTTPError as exc:
            raise transport_error(CODE, url, exc) from exc
        raise_if_unavailable(CODE, response, self._clock())
        if response.status_code != 200:
            raise CarrierError(f"{CODE}: {url} answered HTTP {response.status_code}")
        try:
            answer = Track17Answer.model_validate(json_body(CODE, response))
        except ValidationError as exc:
            raise CarrierError(f"{CODE}: malformed answer from {url}: {exc.error_count()} errors") from exc
        if answer.code != 0 or answer.data.errors:
            detail = "; ".join(f"{e.code} {e.message}" for e in answer.data.errors)
            raise CarrierError(f"{CODE}: {action} refused (code {answer.code}): {detail}")
        return answer
