"""What a carrier tells us about a parcel, in canonical form (carrier adapters map onto this)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from models.status import TrackingStatus


class TrackingEventIn(BaseModel):
    model_config = ConfigDict(frozen=True)
    status: TrackingStatus
    at: AwareDatetime
    location: str = ""
    description: str = ""


class TrackingSnapshot(BaseModel):
    """A parcel's state as the carrier reports it right now: newest status and the full event list."""

    model_config = ConfigDict(frozen=True)
    carrier: str
    tracking_no: str
    status: TrackingStatus
    events: list[TrackingEventIn] = []
    signed_by: str | None = None
    signed_at: datetime | None = None
