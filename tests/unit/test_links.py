"""The signed links' tokens (services/links.py) and what a customer is told (domain/customer_view.py): no server."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from domain.customer_view import CustomerStage, customer_stage, expected_delivery
from models.status import OrderStatus, TrackingStatus
from services.links import TOKEN_SLOT, LinkRefused, approval_token, fill_approval_token, tracking_order, tracking_token

NOW = datetime(2026, 12, 2, 8, tzinfo=UTC)
SECRET = "s3cret"


def test_a_tracking_link_names_its_order_until_it_expires() -> None:
    token = tracking_token(SECRET, "SO-1|odd", NOW + timedelta(days=60))  # a separator inside the number too
    assert tracking_order(SECRET, token, NOW) == "SO-1|odd"
    assert tracking_order(SECRET, token, NOW + timedelta(days=59)) == "SO-1|odd"
    with pytest.raises(LinkRefused, match="expired"):
        tracking_order(SECRET, token, NOW + timedelta(days=60))


def test_a_tracking_link_cannot_be_pointed_at_another_order_or_extended() -> None:
    token = tracking_token(SECRET, "SO-1", NOW + timedelta(days=1))
    _, signature = token.split(".")
    for forged in ("SO-2|1796000000", f"SO-1|{int((NOW + timedelta(days=999)).timestamp())}"):
        encoded = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode()
        with pytest.raises(LinkRefused, match="not valid"):
            tracking_order(SECRET, f"{encoded}.{signature}", NOW)
    with pytest.raises(LinkRefused, match="not valid"):
        tracking_order("another secret", token, NOW)


@pytest.mark.parametrize(
    "garbage", ["", ".", "a.b", "a.b.c", "!!!.???", "U08tMQ.", "U08tMXw5OTk5OTk5OTk5OTk5OTk5OTk.x"]
)
def test_a_mangled_tracking_link_is_refused_not_an_error(garbage: str) -> None:
    with pytest.raises(LinkRefused) as refused:
        tracking_order(SECRET, garbage, NOW)
    assert refused.value.reason == "invalid"


def test_an_approval_token_is_derived_from_the_notice_so_a_resent_mail_has_the_same_link() -> None:
    body = f"Approve: https://x/console/approve/{TOKEN_SLOT}"
    first = fill_approval_token(body, SECRET, "SO-1:approval_needed:1:email:fiona@x")
    assert first == fill_approval_token(body, SECRET, "SO-1:approval_needed:1:email:fiona@x")
    assert first != fill_approval_token(body, SECRET, "SO-1:approval_needed:1:email:fei@x")  # each approver theirs
    assert first.endswith(approval_token(SECRET, "SO-1:approval_needed:1:email:fiona@x"))
    assert approval_token("another secret", "SO-1:approval_needed:1:email:fiona@x") not in first
    assert fill_approval_token("no link here", SECRET, "k") == "no link here"


def test_a_customer_is_told_a_stage_never_our_internal_state() -> None:
    assert {customer_stage(s) for s in OrderStatus} == set(CustomerStage)
    for internal in (OrderStatus.CREDIT_HOLD, OrderStatus.AWAITING_APPROVAL):
        assert customer_stage(internal) == CustomerStage.RECEIVED  # no credit hold, no approval levels
    assert customer_stage(OrderStatus.BACKORDERED) == CustomerStage.PREPARING
    assert customer_stage(OrderStatus.COMPLETED) == CustomerStage.DELIVERED
    assert customer_stage("SOMETHING_NEW") == CustomerStage.RECEIVED


def test_a_parcel_is_expected_after_its_transit_time_and_never_in_the_past() -> None:
    three_days = timedelta(days=3)
    assert expected_delivery(NOW, TrackingStatus.IN_TRANSIT, None, three_days) == NOW + three_days
    late_news = NOW + timedelta(days=4)
    assert expected_delivery(NOW, TrackingStatus.IN_TRANSIT, late_news, three_days) == late_news + timedelta(days=1)
    for done in (TrackingStatus.DELIVERED, TrackingStatus.RETURNED, TrackingStatus.EXPIRED):
        assert expected_delivery(NOW, done, NOW, three_days) is None
