"""The Temporal client, always with the pydantic data converter (Decimal, datetimes, enums round-trip) and the PII
codec (core/codec.py): every payload is encrypted before it leaves the process."""

from __future__ import annotations

from temporalio.client import Client

from core.codec import data_converter
from core.config import Settings


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=data_converter(settings)
    )
