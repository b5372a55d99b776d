"""Client for the carrier simulator (carrier code `sim`), and the simulator's wire format.

The wire models live here, not in the server, so the client owns the contract it parses; the
simulator imports them to answer in exactly that shape.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from pydantic import AwareDatetime, BaseModel, ValidationError

from integrations.carriers.base import CarrierError, UnknownParcel
from integrations.carriers.mapping import raise_if_unavailable
from models.status import TrackingStatus
from models.tracking import TrackingEventIn, TrackingSnapshot

CODE = "sim"


class SimEvent(BaseModel):
    status: TrackingStatus
    at: AwareDatetime
    location: str = ""
    description: str = ""


class SimTrackResponse(BaseModel):
    """`GET /sim/v1/track/{tracking_no}`; events are oldest first."""

    carrier: str
    tracking_no: str
    status: TrackingStatus
    events: list[SimEvent]
    signed_by: str | None = None
    signed_at: AwareDatetime | None = None


def track_path(tracking_no: str) -> str:
    return f"/sim/v1/track/{quote(tracking_no, safe='')}"


class SimCarrierClient:
    code: str = CODE

    def __init__(self, http: httpx.AsyncClient, base_url: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        url = self._base_url + track_path(tracking_no)
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise CarrierError(f"sim: {url} unreachable: {exc!r}") from exc
        if response.status_code == 404:
            raise UnknownParcel(f"sim: unknown parcel {tracking_no!r}")
        raise_if_unavailable("sim", response, datetime.now(UTC))  # 429 / 5xx, with the Retry-After
        if response.status_code != 200:
            raise CarrierError(f"sim: {url} answered HTTP {response.status_code}")
        try:
            body = SimTrackResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise CarrierError(f"sim: malformed answer from {url}: {exc.error_count()} errors") from exc
        if body.tracking_no != tracking_no:
            raise CarrierError(f"sim: asked for {tracking_no!r}, got {body.tracking_no!r}")
        return to_snapshot(body)


def to_snapshot(body: SimTrackResponse) -> TrackingSnapshot:
    return TrackingSnapshot(
        carrier=CODE,
        tracking_no=body.tracking_no,
        status=body.status,
        events=[
            TrackingEventIn(status=e.status, at=e.at, location=e.location, description=e.description)
            for e in body.events
        ],
        signed_by=body.signed_by,
        signed_at=body.signed_at,
    )
