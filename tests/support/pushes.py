"""Carrier pushes as the carriers send them (their own payload shapes and signatures), for webhook tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from core.config import Settings
from dev.simulator.carriers import (
    HAPPY,
    aftership_tracking,
    kuaidi100_answer,
    signer_for,
    track17_accepted,
)
from integrations.carriers import aftership, kuaidi100, track17
from integrations.carriers.sim import SimEvent, SimTrackResponse
from models.status import TrackingStatus


def parcel_view(tracking_no: str, through: TrackingStatus, start: datetime | None = None) -> SimTrackResponse:
    """The happy journey up to and including `through`, one hour a step."""
    start = start or datetime.now(UTC) - timedelta(days=1)
    events: list[SimEvent] = []
    for i, step in enumerate(HAPPY.steps):
        events.append(
            SimEvent(
                status=step.status,
                at=start + timedelta(hours=i),
                location=step.location or "",
                description=step.description or "",
            )
        )
        if step.status == through:
            break
    delivered = events[-1].status == TrackingStatus.DELIVERED
    return SimTrackResponse(
        carrier="sim",
        tracking_no=tracking_no,
        status=events[-1].status,
        events=events,
        signed_by=signer_for(tracking_no) if delivered else None,
        signed_at=events[-1].at if delivered else None,
    )


def signed_push(
    carrier: str, view: SimTrackResponse, settings: Settings, *, forge: bool = False
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of `carrier`'s push about `view`; `forge` signs with the wrong secret."""
    if carrier == "kuaidi100":
        answer = kuaidi100_answer(view, settings.carrier_kuaidi100_company, ascending=False)
        param = json.dumps(
            {"status": "polling", "message": "", "lastResult": answer.model_dump(mode="json")}, ensure_ascii=False
        )
        sign = kuaidi100.push_sign(param, "not-the-salt" if forge else settings.carrier_kuaidi100_salt)
        body = urlencode({"param": param, "sign": sign}).encode()
        return body, {"content-type": "application/x-www-form-urlencoded"}
    if carrier == "17track":
        data = track17_accepted(view).model_dump(mode="json")
        body = json.dumps({"event": "TRACKING_UPDATED", "data": data}).encode()
        key = "not-the-key" if forge else settings.carrier_17track_key
        return body, {"content-type": "application/json", track17.SIGNATURE_HEADER: track17.sign(body, key)}
    if carrier == "aftership":
        tracking = aftership_tracking(view, settings.carrier_aftership_slug).model_dump(mode="json")
        hook = {"event": "tracking_update", "msg": tracking, "ts": int(datetime.now(UTC).timestamp())}
        raw = json.dumps(hook).encode()
        secret = "not-the-secret" if forge else settings.carrier_aftership_webhook_secret
        return raw, {"content-type": "application/json", aftership.SIGNATURE_HEADER: aftership.sign(raw, secret)}
    raise ValueError(f"no push shape for {carrier!r}")
