"""Invoice arithmetic (domain/billing.py): the tax rule, totals, numbers, due dates, ageing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.billing import (
    AGEING_BUCKETS,
    BillingError,
    InvoiceTiming,
    Settled,
    ageing_bucket,
    due_date,
    invoice_number,
    invoice_timing,
    line_amounts,
    settlement,
    totals,
)

D = Decimal
ISSUED = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


def test_tax_comes_out_of_the_tax_inclusive_price() -> None:
    line = line_amounts("SKU-1", 2, D("56.50"), D("0.13"))  # 113.00 gross: 100.00 + 13 % = 113.00
    assert (line.gross, line.net, line.tax) == (D("113.00"), D("100.00"), D("13.00"))
    assert line_amounts("SKU-1", 1, D("0.01"), D("0.13")).tax == D("0.00")  # 0.00115 rounds down
    assert line_amounts("SKU-1", 3, D("10.00"), D("0")).tax == D("0.00")


def test_half_a_cent_rounds_up_not_to_even() -> None:
    # rate 0.6: tax = gross × 0.375; 0.12 × 0.375 = 0.045 exactly → 0.05 (half-even would give 0.04)
    line = line_amounts("SKU-1", 1, D("0.12"), D("0.6"))
    assert (line.tax, line.net) == (D("0.05"), D("0.07"))


@given(
    qty=st.integers(min_value=1, max_value=10_000),
    cents=st.integers(min_value=0, max_value=10_000_000),
    rate_bp=st.integers(min_value=0, max_value=9_999),
)
def test_every_line_adds_up_and_the_invoice_is_the_sum_of_its_lines(qty: int, cents: int, rate_bp: int) -> None:
    rate = D(rate_bp) / 10000
    line = line_amounts("SKU-1", qty, D(cents) / 100, rate)
    assert line.net + line.tax == line.gross == (D(cents) / 100 * qty).quantize(D("0.01"))
    assert D(0) <= line.tax <= line.gross and line.tax.as_tuple().exponent == -2
    other = line_amounts("SKU-2", 1, D("9.99"), rate)
    sums = totals([line, other])
    assert (sums.net, sums.tax, sums.gross) == (line.net + other.net, line.tax + other.tax, line.gross + other.gross)


@pytest.mark.parametrize(
    ("qty", "price", "rate", "why"),
    [(0, "1.00", "0.13", "quantity"), (1, "-1.00", "0.13", "negative"), (1, "1.00", "1.3", "between 0 and 1")],
)
def test_a_line_that_cannot_be_billed_is_refused(qty: int, price: str, rate: str, why: str) -> None:
    with pytest.raises(BillingError, match=why):
        line_amounts("SKU-1", qty, D(price), D(rate))
    with pytest.raises(BillingError, match="at least one line"):
        totals([])


def test_numbers_due_dates_and_ageing() -> None:
    assert invoice_number("OF", 2026, 42) == "OF-2026-000042"
    due = due_date(ISSUED, 30)
    assert due == ISSUED + timedelta(days=30) and due_date(ISSUED, 0) == ISSUED
    with pytest.raises(BillingError):
        due_date(ISSUED, -1)
    days = {0: "current", 1: "1-30", 30: "1-30", 31: "31-60", 60: "31-60", 61: "61-90", 90: "61-90", 91: "over 90"}
    for overdue, bucket in days.items():
        assert ageing_bucket(due, due + timedelta(days=overdue)) == bucket
    assert ageing_bucket(due, due - timedelta(days=5)) == "current"
    assert list(AGEING_BUCKETS) == ["current", "1-30", "31-60", "61-90", "over 90"]


def test_the_orders_money_in_a_word() -> None:
    total = D("100.00")

    def word(**money: str) -> str:
        return settlement(total, Settled(**{k: D(v) for k, v in money.items()}))

    assert word() == "not invoiced"
    assert word(invoiced="60.00") == "unpaid"  # one parcel of two invoiced
    assert word(invoiced="100.00", paid="40.00") == "partially paid"
    assert word(invoiced="100.00", paid="100.00") == "paid"
    assert word(paid="100.00") == "paid"  # prepaid, not shipped yet
    assert word(paid="100.00", refunded="100.00") == "refunded"
    assert word(invoiced="100.00", credited="100.00") == "credited"  # a COD parcel refused at the door
    assert word(invoiced="100.00", paid="100.00", credited="100.00") == "credited"  # paid, returned: refund due
    assert word(invoiced="100.00", credited="40.00", paid="60.00") == "paid"  # one parcel lost, the other paid
    assert word(invoiced="100.00", credited="40.00", paid="30.00") == "partially paid"
    assert word(invoiced="100.00", paid="70.00", written_off="30.00") == "written off"


def test_invoice_timing_is_point_and_unit_and_refuses_what_cannot_be() -> None:
    assert InvoiceTiming.parse("dispatch/parcel") == InvoiceTiming("dispatch", "parcel")
    assert InvoiceTiming.parse(" delivery/order ") == InvoiceTiming("delivery", "order")
    assert InvoiceTiming.parse("approval") == InvoiceTiming("approval", "order")
    assert InvoiceTiming.parse("delivery") == InvoiceTiming("delivery", "parcel")
    for bad in ("approval/parcel", "shipping/parcel", "dispatch/box", ""):
        with pytest.raises(BillingError):
            InvoiceTiming.parse(bad)
    assert str(invoice_timing(None, "shopify", {"shopify": "delivery/order"}, "dispatch/parcel")) == "delivery/order"
    assert str(invoice_timing("approval/order", "shopify", {"shopify": "delivery/order"}, "dispatch/parcel")) == (
        "approval/order"
    )
    assert str(invoice_timing(None, "api", {"shopify": "delivery/order"}, "dispatch/parcel")) == "dispatch/parcel"
