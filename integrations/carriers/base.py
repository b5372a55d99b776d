"""What every carrier adapter offers: one call that returns the parcel's canonical state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from models.tracking import TrackingSnapshot


class CarrierError(Exception):
    """The carrier could not answer right now (transport error, 5xx, garbage): worth retrying."""


class UnknownParcel(CarrierError):
    """The carrier does not know this tracking number (yet: carriers often lag behind dispatch)."""


class CarrierClient(Protocol):
    code: str

    async def track(self, tracking_no: str) -> TrackingSnapshot: ...


class BatchCarrierClient(CarrierClient, Protocol):
    """A carrier whose API answers for many parcels in one call (17TRACK: up to 40 numbers)."""

    batch_limit: int

    async def track_many(self, numbers: Sequence[str]) -> list[TrackingSnapshot]:
        """Snapshots of the numbers the carrier knows (≤ batch_limit per HTTP call); unknown ones are left out."""
        ...


class CarrierUnavailable(CarrierError):
    """The carrier could not answer: transport error, timeout, 5xx, or 429. `retry_after` (seconds) is the
    carrier's own Retry-After, for the poller to honour."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
