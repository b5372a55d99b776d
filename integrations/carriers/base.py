"""What every carrier adapter offers: one call that returns the parcel's canonical state."""

from __future__ import annotations

from typing import Protocol

from models.tracking import TrackingSnapshot


class CarrierError(Exception):
    """The carrier could not answer right now (transport error, 5xx, garbage): worth retrying."""


class UnknownParcel(CarrierError):
    """The carrier does not know this tracking number (yet: carriers often lag behind dispatch)."""


class CarrierClient(Protocol):
    code: str

    async def track(self, tracking_no: str) -> TrackingSnapshot: ...
