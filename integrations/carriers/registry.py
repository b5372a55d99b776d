"""Carrier code → client. Adding a carrier is one entry in `_FACTORIES`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from core.config import Settings
from integrations.carriers.aftership import AfterShipClient
from integrations.carriers.base import BatchCarrierClient, CarrierClient
from integrations.carriers.kuaidi100 import Kuaidi100Client
from integrations.carriers.sim import SimCarrierClient
from integrations.carriers.track17 import Track17Client

# Where each aggregator lives on the carrier simulator, when its own URL setting is empty.
SIMULATOR_ROUTES: dict[str, str] = {
    "kuaidi100": "/kuaidi100",
    "17track": "/track17/track/v2.2",
    "aftership": "/aftership/v4",
}


class UnknownCarrierCode(ValueError):
    """No adapter for this carrier code (or not one that does what was asked): retrying cannot help."""


def carrier_base_url(code: str, settings: Settings) -> str:
    configured = {
        "kuaidi100": settings.carrier_kuaidi100_url,
        "17track": settings.carrier_17track_url,
        "aftership": settings.carrier_aftership_url,
    }.get(code, "")
    return configured or settings.carrier_sim_url.rstrip("/") + SIMULATOR_ROUTES[code]


def _sim(http: httpx.AsyncClient, settings: Settings) -> CarrierClient:
    return SimCarrierClient(http, settings.carrier_sim_url)


def _kuaidi100(http: httpx.AsyncClient, settings: Settings) -> Kuaidi100Client:
    return Kuaidi100Client(
        http,
        carrier_base_url("kuaidi100", settings),
        customer=settings.carrier_kuaidi100_customer,
        key=settings.carrier_kuaidi100_key,
        company=settings.carrier_kuaidi100_company,
        salt=settings.carrier_kuaidi100_salt,
    )


def _track17(http: httpx.AsyncClient, settings: Settings) -> Track17Client:
    return Track17Client(http, carrier_base_url("17track", settings), key=settings.carrier_17track_key)


def _aftership(http: httpx.AsyncClient, settings: Settings) -> CarrierClient:
    return AfterShipClient(
        http,
        carrier_base_url("aftership", settings),
        api_key=settings.carrier_aftership_key,
        slug=settings.carrier_aftership_slug,
    )


_FACTORIES: dict[str, Callable[[httpx.AsyncClient, Settings], CarrierClient]] = {
    "sim": _sim,
    "kuaidi100": _kuaidi100,
    "17track": _track17,
    "aftership": _aftership,
}

KNOWN_CARRIERS: frozenset[str] = frozenset(_FACTORIES)


def carrier_client(code: str, http: httpx.AsyncClient, settings: Settings) -> CarrierClient:
    factory = _FACTORIES.get(code.strip().lower())
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise UnknownCarrierCode(f"unknown carrier code {code!r} (known: {known})")
    return factory(http, settings)


# Carriers with a batch query, polled together by one CarrierPoller (workflows/carrier_poller.py).
_BATCH_FACTORIES: dict[str, Callable[[httpx.AsyncClient, Settings], BatchCarrierClient]] = {"17track": _track17}
BATCH_CARRIERS: frozenset[str] = frozenset(_BATCH_FACTORIES)


def batch_carrier_client(code: str, http: httpx.AsyncClient, settings: Settings) -> BatchCarrierClient:
    factory = _BATCH_FACTORIES.get(code.strip().lower())
    if factory is None:
        batch = ", ".join(sorted(BATCH_CARRIERS))
        raise UnknownCarrierCode(f"carrier {code!r} has no batch query (batch carriers: {batch})")
    return factory(http, settings)


# Carriers whose API takes a callback URL per parcel (Kuaidi100's subscribe). 17TRACK and AfterShip push to a
# webhook configured once for the account, so there is nothing to do per parcel.
SUBSCRIBE_CARRIERS: frozenset[str] = frozenset({"kuaidi100"})


def push_callbacks(base_url: str) -> dict[str, str]:
    """Carrier → where it should push news about each parcel (carriers that take a per-parcel subscription); none
    without our public base URL."""
    if not base_url:
        return {}
    return {carrier: f"{base_url.rstrip('/')}/webhooks/carriers/{carrier}" for carrier in sorted(SUBSCRIBE_CARRIERS)}


async def subscribe_parcel(
    carrier: str, tracking_no: str, callback_url: str, http: httpx.AsyncClient, settings: Settings
) -> None:
    """Ask the carrier to push news about the parcel to `callback_url` (subscribing twice is fine)."""
    if carrier != "kuaidi100":
        raise UnknownCarrierCode(f"carrier {carrier!r} takes no per-parcel subscription")
    await _kuaidi100(http, settings).subscribe(tracking_no, callback_url)
