"""AfterShip-style carrier aggregator (carrier code `aftership`): trackings API with tags/subtags, signed webhooks.

    get      GET  {base}/trackings/{slug}/{tracking_number}    header as-api-key
    create   POST {base}/trackings  {"tracking": {"slug", "tracking_number"}}
    answers  {"meta": {"code", "message", "type"}, "data": {"tracking": {...}}}; an unknown tracking is HTTP 404
             with meta.code 4004
    webhook  {"event": "tracking_update", "msg": <tracking>, "ts": ...} with header aftership-hmac-sha256 =
             base64(HMAC-SHA256(webhook secret, raw body))

The slug (AfterShip's courier code) is the client's default, or the prefix of a number written `slug:number`.
A tracking AfterShip does not know yet is created, then read once more.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from integrations.carriers.base import CarrierError, UnknownParcel
from integrations.carriers.mapping import (
    aftership_status,
    extract_signer,
    iso_to_utc,
    json_body,
    raise_if_unavailable,
    transport_error,
)
from models.status import TrackingStatus
from models.tracking import TrackingEventIn, TrackingSnapshot

CODE: Final = "aftership"
SIGNATURE_HEADER: Final = "aftership-hmac-sha256"
TRACKING_NOT_FOUND: Final = 4004
TRACKING_EXISTS: Final = 4003


class AfterShipCheckpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    checkpoint_time: str | None = None
    created_at: str | None = None
    message: str = ""
    location: str | None = None
    city: str | None = None
    state: str | None = None
    country_name: str | None = None
    tag: str | None = None
    subtag: str | None = None


class AfterShipTracking(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    slug: str | None = None
    tracking_number: str
    tag: str | None = None
    subtag: str | None = None
    subtag_message: str | None = None
    signed_by: str | None = None
    shipment_delivery_date: str | None = None
    checkpoints: list[AfterShipCheckpoint] = []


class AfterShipMeta(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: int
    message: str = ""
    type: str | None = None


class AfterShipEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    meta: AfterShipMeta
    data: dict[str, Any] | None = None

    def tracking(self) -> AfterShipTracking:
        """`data.tracking` (v4) or `data` itself (the dated API versions)."""
        data = self.data or {}
        return AfterShipTracking.model_validate(data.get("tracking", data))


class AfterShipWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: str
    event_id: str | None = None
    msg: dict[str, Any] | None = None
    ts: int | None = None


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_webhook_signature(body: bytes, signature: str | None, secret: str) -> bool:
    """base64(HMAC-SHA256(secret, raw body)) against the aftership-hmac-sha256 header. No secret/sign: refused."""
    if not secret or not signature:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().encode())


def parse_webhook(body: bytes | str, *, default_slug: str = "") -> TrackingSnapshot | None:
    """A webhook body as a snapshot; None for events without a tracking. The tracking number is `slug:number`
    unless the slug is `default_slug` (the same convention as the client's)."""
    try:
        hook = AfterShipWebhook.model_validate_json(body)
        if not hook.msg or "tracking_number" not in hook.msg:
            return None
        tracking = AfterShipTracking.model_validate(hook.msg)
    except ValidationError as exc:
        raise CarrierError(f"{CODE}: malformed webhook: {exc.error_count()} errors") from exc
    slug = tracking.slug or ""
    number = tracking.tracking_number if not slug or slug == default_slug else f"{slug}:{tracking.tracking_number}"
    return to_snapshot(tracking, number)


def split_number(tracking_no: str, default_slug: str) -> tuple[str, str]:
    slug, sep, number = tracking_no.partition(":")
    if sep:
        return slug.strip().lower(), number.strip()
    return default_slug, tracking_no.strip()


def _location(checkpoint: AfterShipCheckpoint) -> str:
    if checkpoint.location:
        return checkpoint.location
    return ", ".join(part for part in (checkpoint.city, checkpoint.state, checkpoint.country_name) if part)


def to_snapshot(tracking: AfterShipTracking, tracking_no: str) -> TrackingSnapshot:
    try:
        events = [
            TrackingEventIn(
                status=aftership_status(cp.tag, cp.subtag),
                # checkpoint_time is the carrier's local time, with an offset when the carrier gives one;
                # without one it is read as UTC (created_at is when AfterShip saw it, not when it happened).
                at=iso_to_utc(cp.checkpoint_time or cp.created_at or ""),
                location=_location(cp),
                description=cp.message,
            )
            for cp in tracking.checkpoints
        ]
    except ValueError as exc:
        raise CarrierError(f"{CODE}: unreadable checkpoint for {tracking_no!r}: {exc}") from exc
    events.sort(key=lambda event: event.at)  # checkpoints come oldest first; sort anyway, stably
    status = aftership_status(tracking.tag, tracking.subtag) if tracking.tag else TrackingStatus.PENDING
    signed_by: str | None = None
    signed_at: datetime | None = None
    if status is TrackingStatus.DELIVERED:
        delivered = [e for e in events if e.status is TrackingStatus.DELIVERED] or events[-1:]
        signed_by = (tracking.signed_by or "").strip() or next(
            (name for e in reversed(delivered) if (name := extract_signer(e.description))), None
        )
        signed_at = delivered[-1].at if delivered else None
        if signed_at is None and tracking.shipment_delivery_date:
            try:
                signed_at = iso_to_utc(tracking.shipment_delivery_date)
            except ValueError:
                signed_at = None
    return TrackingSnapshot(
        carrier=CODE, tracking_no=tracking_no, status=status, events=events, signed_by=signed_by, signed_at=signed_at
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AfterShipClient:
    code: str = CODE

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        api_key: str,
        slug: str,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._slug = slug
        self._clock = clock

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        slug, number = split_number(tracking_no, self._slug)
        envelope = await self._get(slug, number)
        if envelope is None:  # AfterShip does not track it yet: create it, read once more
            await self.create_tracking(tracking_no)
            envelope = await self._get(slug, number)
        if envelope is None:
            raise UnknownParcel(f"{CODE}: unknown parcel {tracking_no!r}")
        try:
            tracking = envelope.tracking()
        except ValidationError as exc:
            raise CarrierError(f"{CODE}: malformed tracking for {tracking_no!r}: {exc.error_count()} errors") from exc
        if tracking.tracking_number != number:
            raise CarrierError(f"{CODE}: asked for {number!r}, got {tracking.tracking_number!r}")
        return to_snapshot(tracking, tracking_no)

    async def create_tracking(self, tracking_no: str) -> None:
        """Start tracking a number; an existing tracking is fine. A number AfterShip refuses is unknown."""
        slug, number = split_number(tracking_no, self._slug)
        url = f"{self._base_url}/trackings"
        body = {"tracking": {"slug": slug, "tracking_number": number}}
        response = await self._send("POST", url, json=body)
        if response.status_code in (200, 201):
            return
        envelope = self._envelope(url, response)
        if envelope.meta.code == TRACKING_EXISTS:
            return
        if response.status_code in (400, 404, 422):
            raise UnknownParcel(f"{CODE}: cannot track {tracking_no!r} ({envelope.meta.code}): {envelope.meta.message}")
        raise CarrierError(f"{CODE}: {url} answered HTTP {response.status_code}: {envelope.meta.message}")

    async def _get(self, slug: str, number: str) -> AfterShipEnvelope | None:
        url = f"{self._base_url}/trackings/{quote(slug, safe='')}/{quote(number, safe='')}"
        response = await self._send("GET", url)
        envelope = self._envelope(url, response)
        if response.status_code == 404 and envelope.meta.code == TRACKING_NOT_FOUND:
            return None
        if response.status_code != 200:
            raise CarrierError(f"{CODE}: {url} answered HTTP {response.status_code}: {envelope.meta.message}")
        return envelope

    async def _send(self, method: str, url: str, json: object | None = None) -> httpx.Response:
        try:
            response = await self._http.request(method, url, json=json, headers={"as-api-key": self._api_key})
        except httpx.HTTPError as exc:
            raise transport_error(CODE, url, exc) from exc
        raise_if_unavailable(CODE, response, self._clock())
        return response

    @staticmethod
    def _envelope(url: str, response: httpx.Response) -> AfterShipEnvelope:
        try:
            return AfterShipEnvelope.model_validate(json_body(CODE, response))
        except ValidationError as exc:
            raise CarrierError(
                f"{CODE}: malformed answer (HTTP {response.status_code}) from {url}: {exc.error_count()} errors"
            ) from exc
