"""Carrier code → client. Adding a carrier is one entry in `_FACTORIES`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from core.config import Settings
from integrations.carriers.base import CarrierClient
from integrations.carriers.sim import SimCarrierClient


def _sim(http: httpx.AsyncClient, settings: Settings) -> CarrierClient:
    return SimCarrierClient(http, settings.carrier_sim_url)


_FACTORIES: dict[str, Callable[[httpx.AsyncClient, Settings], CarrierClient]] = {"sim": _sim}

KNOWN_CARRIERS: frozenset[str] = frozenset(_FACTORIES)


def carrier_client(code: str, http: httpx.AsyncClient, settings: Settings) -> CarrierClient:
    factory = _FACTORIES.get(code.strip().lower())
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise ValueError(f"unknown carrier code {code!r} (known: {known})")
    return factory(http, settings)
