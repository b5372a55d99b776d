"""The tracking steps one at a time (Temporal's activity test environment, real databases, the real simulator):
what a poll makes of a carrier that fails, and what recording news does when two arrive at once."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.tracking
from activities.tracking import TrackingActivities
from core.config import Settings
from models.contracts import PollInput
from models.status import TrackingStatus
from models.tracking import TrackingSnapshot
from workflows.contract import STALL_ERRORS, ErrorType


class _AdapterWithAParsingBug:
    """A carrier adapter whose answer handling trips over something (here: a ValueError, as pydantic's
    ValidationError is one): the kind of stray error an adapter can raise on an answer nobody foresaw."""

    code = "sim"

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        raise ValueError(f"1 validation error for TrackingSnapshot: unexpected shape for {tracking_no}")


async def _poll(settings: Settings, engine: Engine, carrier: str) -> ApplicationError:
    async with httpx.AsyncClient() as http:
        steps = TrackingActivities(engine, settings, http)
        inp = PollInput(
            order_no="T-POLL-1", carrier=carrier, tracking_no="SIMPOLL1", known_status=TrackingStatus.PENDING,
            known_events=0,
        )  # fmt: skip
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(steps.poll_parcel, inp)
    return failure.value


async def test_a_stray_parsing_error_is_no_news_not_an_unknown_carrier(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activities.tracking, "carrier_client", lambda *_: _AdapterWithAParsingBug())
    failure = await _poll(settings, engine, "sim")
    # Retried at the poll interval and counted as a quiet carrier (stall, then expiry), never the end of tracking.
    assert failure.type != ErrorType.UNKNOWN_CARRIER and not failure.non_retryable
    assert failure.type in STALL_ERRORS
    assert "unexpected shape" in failure.message


async def test_an_unknown_carrier_code_still_ends_the_poll_for_good(settings: Settings, engine: Engine) -> None:
    failure = await _poll(settings, engine, "no-such-carrier")
    assert failure.type == ErrorType.UNKNOWN_CARRIER and failure.non_retryable
