"""Carrier simulator: a real HTTP server answering for carrier code `sim`.

Parcels appear on first sight and walk INFO_RECEIVED → … → DELIVERED, either one step per
`step_seconds` of wall-clock time ("time") or one step per GET ("query": deterministic, for tests
on a time-skipping Temporal server where wall-clock time means nothing).

    python -m integrations.carriers.simulator --port 8081 --step-seconds 5 --advance time
"""

from __future__ import annotations

import argparse
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import uvicorn
from fastapi import FastAPI, Path, Response
from pydantic import BaseModel, Field

from integrations.carriers.sim import SimEvent, SimTrackResponse
from models.status import TrackingStatus

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

TrackingNo = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


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
    gets: int = 0
    reached: list[datetime] = field(default_factory=list)  # reached[i]: when STEPS[i] happened


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

    def register(self, tracking_no: str) -> tuple[SimTrackResponse, bool]:
        """Pre-register without moving the parcel; returns (view, created)."""
        with self._lock:
            created = tracking_no not in self._parcels
            parcel = self._get_or_create(tracking_no)
            self._catch_up(parcel)
            return self._view(parcel), created

    def query(self, tracking_no: str) -> SimTrackResponse:
        with self._lock:
            parcel = self._get_or_create(tracking_no)
            parcel.gets += 1
            self._catch_up(parcel)
            return self._view(parcel)

    def _get_or_create(self, tracking_no: str) -> _Parcel:
        parcel = self._parcels.get(tracking_no)
        if parcel is None:
            now = self._clock()
            parcel = _Parcel(tracking_no=tracking_no, first_seen=now, reached=[now])
            self._parcels[tracking_no] = parcel
        return parcel

    def _catch_up(self, parcel: _Parcel) -> None:
        last = len(STEPS) - 1
        if self.advance == "query":
            # The k-th GET shows step k-1, whether or not the parcel was pre-registered.
            target = min(max(parcel.gets - 1, 0), last)
            while len(parcel.reached) <= target:
                parcel.reached.append(self._clock())
            return
        if self.step_seconds == 0:
            target = last
        else:
            elapsed = (self._clock() - parcel.first_seen).total_seconds()
            target = min(int(elapsed / self.step_seconds), last)
        step = timedelta(seconds=self.step_seconds)
        while len(parcel.reached) <= target:
            # Stamp each step when it was due, not when someone happened to look.
            parcel.reached.append(parcel.first_seen + step * len(parcel.reached))

    def _view(self, parcel: _Parcel) -> SimTrackResponse:
        events = [
            SimEvent(status=status, at=at, location=location, description=description)
            for (status, location, description), at in zip(STEPS, parcel.reached, strict=False)
        ]
        delivered = events[-1].status is TrackingStatus.DELIVERED
        return SimTrackResponse(
            carrier="sim",
            tracking_no=parcel.tracking_no,
            status=events[-1].status,
            events=events,
            signed_by=signer_for(parcel.tracking_no) if delivered else None,
            signed_at=events[-1].at if delivered else None,
        )


class RegisterParcel(BaseModel):
    tracking_no: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


def create_app(step_seconds: float, advance: str = "time", *, clock: Callable[[], datetime] = _utcnow) -> FastAPI:
    book = ParcelBook(step_seconds, advance, clock)
    app = FastAPI(title="orderflow carrier simulator", version="1")
    app.state.book = book

    @app.get("/healthz")
    async def healthz() -> dict[str, str | float]:
        return {"status": "ok", "advance": book.advance, "step_seconds": book.step_seconds}

    @app.get("/sim/v1/track/{tracking_no}")
    async def track(tracking_no: TrackingNo) -> SimTrackResponse:
        return book.query(tracking_no)

    @app.post("/sim/parcels", status_code=201)
    async def register(body: RegisterParcel, response: Response) -> SimTrackResponse:
        view, created = book.register(body.tracking_no)
        if not created:
            response.status_code = 200
        return view

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
    args = parser.parse_args(argv)
    app = create_app(args.step_seconds, args.advance)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
