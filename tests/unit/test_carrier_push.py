"""Carrier pushes: signatures are checked first, and a real carrier is never on the simulator's public secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.config import Settings
from integrations.carriers.push import PushRefused, read_push
from models.status import TrackingStatus
from tests.support.pushes import parcel_view, signed_push


@pytest.mark.parametrize("carrier", ["kuaidi100", "17track", "aftership"])
def test_a_signed_push_reads_and_a_forged_one_is_refused(carrier: str) -> None:
    settings = Settings()
    body, headers = signed_push(carrier, parcel_view("PUSHUNIT1", TrackingStatus.OUT_FOR_DELIVERY), settings)
    snapshot = read_push(carrier, body, headers, settings)
    assert snapshot is not None and snapshot.status == TrackingStatus.OUT_FOR_DELIVERY
    forged, forged_headers = signed_push(
        carrier, parcel_view("PUSHUNIT1", TrackingStatus.DELIVERED), settings, forge=True
    )
    with pytest.raises(PushRefused):
        read_push(carrier, forged, forged_headers, settings)


@pytest.mark.parametrize(
    ("carrier", "url_setting"),
    [
        ("kuaidi100", "carrier_kuaidi100_url"),
        ("17track", "carrier_17track_url"),
        ("aftership", "carrier_aftership_url"),
    ],
)
def test_a_real_carrier_on_the_simulators_public_secret_is_refused(carrier: str, url_setting: str) -> None:
    # Anyone could sign with the simulator's default secret: a real carrier on it is refused before the process
    # takes a single push; with its own secret, its pushes read.
    with pytest.raises(ValidationError, match="simulator credential"):
        Settings.model_validate({url_setting: "https://api.carrier.example"})
    secrets = {
        "kuaidi100": {"carrier_kuaidi100_key": "real-key", "carrier_kuaidi100_salt": "real-salt"},
        "17track": {"carrier_17track_key": "real-17token"},
        "aftership": {"carrier_aftership_key": "real-key", "carrier_aftership_webhook_secret": "real-secret"},
    }[carrier]
    settings = Settings.model_validate({url_setting: "https://api.carrier.example", **secrets})
    body, headers = signed_push(carrier, parcel_view("PUSHUNIT2", TrackingStatus.DELIVERED), settings)
    snapshot = read_push(carrier, body, headers, settings)
    assert snapshot is not None and snapshot.status == TrackingStatus.DELIVERED
