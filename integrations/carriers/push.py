"""Carrier pushes (webhooks): check the carrier's signature first, then read the payload as a snapshot.

kuaidi100   form `param` + `sign` = MD5(param + salt), upper-case (salt: carrier_kuaidi100_salt)
17track     header `sign` = SHA-256 hex of (raw body + "/" + key) (key: carrier_17track_key)
aftership   header `aftership-hmac-sha256` = base64 HMAC-SHA256 of the raw body (carrier_aftership_webhook_secret)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.config import Settings
from integrations.carriers import aftership, kuaidi100, track17
from integrations.carriers.registry import UnknownCarrierCode
from models.tracking import TrackingSnapshot

PUSH_CARRIERS = frozenset({"kuaidi100", "17track", "aftership"})
_PUSHERS = ", ".join(sorted(PUSH_CARRIERS))


class PushRefused(Exception):
    """The push is not the carrier's: missing or wrong signature. Nothing may change."""


def _secret(carrier: str, settings: Settings) -> str:
    # A real carrier never runs on the simulator's public secret: Settings refuses that combination at start-up.
    return {
        "kuaidi100": settings.carrier_kuaidi100_salt,
        "17track": settings.carrier_17track_key,
        "aftership": settings.carrier_aftership_webhook_secret,
    }[carrier]


def read_push(carrier: str, body: bytes, headers: Mapping[str, str], settings: Settings) -> TrackingSnapshot | None:
    """The pushed snapshot (None: a push without tracking news, e.g. 17TRACK's TRACKING_STOPPED).
    Raises PushRefused on a bad signature, CarrierError on a
    malformed payload, UnknownCarrierCode for a carrier that does not push."""
    if carrier not in PUSH_CARRIERS:
        raise UnknownCarrierCode(f"carrier {carrier!r} does not push (push carriers: {_PUSHERS})")
    secret = _secret(carrier, settings)
    if carrier == "kuaidi100":
        param, sign = kuaidi100.parse_push_form(body)
        if not kuaidi100.verify_push_signature(param, sign, secret):
            raise PushRefused("kuaidi100: push signature does not match")
        return kuaidi100.parse_push(param, default_company=settings.carrier_kuaidi100_company)
    if carrier == "17track":
        if not track17.verify_push_signature(body, headers.get(track17.SIGNATURE_HEADER), secret):
            raise PushRefused("17track: push signature does not match")
        return track17.parse_push(body)
    if carrier == "aftership":
        signature = headers.get(aftership.SIGNATURE_HEADER)
        if not aftership.verify_webhook_signature(body, signature, secret):
            raise PushRefused("aftership: webhook signature does not match")
        return aftership.parse_webhook(body, default_slug=settings.carrier_aftership_slug)
    raise UnknownCarrierCode(f"carrier {carrier!r} does not push (push carriers: {_PUSHERS})")


def acknowledgement(carrier: str) -> dict[str, Any]:
    """What each carrier expects back so it stops re-sending the push."""
    if carrier == "kuaidi100":
        return {"result": True, "returnCode": "200", "message": "成功"}
    return {"code": 0, "message": "ok"}
