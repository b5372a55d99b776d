"""Carrier pushes: signatures are checked first, and a real carrier still on the simulator's secret is refused."""

from __future__ import annotations

import pytest

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
    # Correctly signed with the default secret, but the carrier is a real one: anyone could have signed this.
    settings = Settings.model_validate({url_setting: "https://api.carrier.example"})
    body, headers = signed_push(carrier, parcel_view("PUSHUNIT2", TrackingStatus.DELIVERED), settings)
    with pytest.raises(PushRefused, match="secret is configured"):
        read_push(carrier, body, headers, settings)
