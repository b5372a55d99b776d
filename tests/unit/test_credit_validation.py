"""domain.credit (exposure vs limit) and domain.validation (every reason an order cannot be accepted)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from domain.credit import check_credit
from domain.validation import REQUIRED_ADDRESS_FIELDS, ProductFacts, price_within_policy, validate_order
from models.order import Order
from services.order_checks import facts_of

D = Decimal


# --- credit --------------------------------------------------------------------------------------


class TestCredit:
    def test_exposure_is_receivables_plus_open_orders_plus_this_order(self) -> None:
        check = check_credit(D("100000.00"), D("12000.50"), D("30000.25"), D("999.25"), prepaid=False)
        assert check.exposure == D("43000.00")
        assert check.limit == D("100000.00")
        assert check.headroom == D("57000.00")
        assert not check.hold

    def test_over_the_limit_is_held(self) -> None:
        check = check_credit(D("50000.00"), D("47500.00"), D("0.00"), D("2500.01"), prepaid=False)
        assert check.hold
        assert check.headroom == D("-0.01")

    def test_exactly_at_the_limit_is_not_held(self) -> None:
        check = check_credit(D("50000.00"), D("47500.00"), D("0.00"), D("2500.00"), prepaid=False)
        assert not check.hold
        assert check.headroom == D("0.00")

    def test_open_orders_count(self) -> None:
        assert check_credit(D("100"), D("0"), D("60"), D("50"), prepaid=False).hold
        assert not check_credit(D("100"), D("0"), D("50"), D("50"), prepaid=False).hold

    def test_prepaid_is_never_held_but_exposure_is_still_reported(self) -> None:
        check = check_credit(D("1000.00"), D("5000.00"), D("0.00"), D("20000.00"), prepaid=True)
        assert not check.hold
        assert check.exposure == D("25000.00")

    def test_arithmetic_is_exact_decimal(self) -> None:
        # 0.1 + 0.2 in float is 0.30000000000000004 > 0.3: Decimal must not hold this order.
        assert not check_credit(D("0.30"), D("0.10"), D("0.00"), D("0.20"), prepaid=False).hold
        assert isinstance(check_credit(D("1"), D("0"), D("0"), D("1"), prepaid=False).exposure, Decimal)


# --- validation ----------------------------------------------------------------------------------

ADDRESS = {
    "name": "张三",
    "phone": "13800000000",
    "region": "华东",
    "province": "上海",
    "city": "上海",
    "address": "浦东新区 XX 路 1 号",
    "postcode": "200120",
}
PRODUCTS = {
    "SKU-1": ProductFacts("SKU-1", D("100.00"), active=True),
    "SKU-2": ProductFacts("SKU-2", D("199.00"), active=True),
    "SKU-OLD": ProductFacts("SKU-OLD", D("99.00"), active=False),
}
TOLERANCE = D("0.05")


def order(lines: list[tuple[str, int, str]] | None = None, **fields: Any) -> Order:
    data: dict[str, Any] = {
        "order_no": "SO-1",
        "customer_id": "C-1",
        "sales_rep": "alice",
        "ship_to": ADDRESS,
        "lines": [{"sku": s, "qty": q, "unit_price": p} for s, q, p in (lines or [("SKU-1", 1, "100.00")])],
    }
    data.update(fields)
    return Order.model_validate(data)


def reasons_for(o: Order, *, customer_known: bool = True) -> list[str]:
    return validate_order(facts_of(o), PRODUCTS, customer_known, TOLERANCE)


class TestValidation:
    def test_a_good_order_has_no_reasons(self) -> None:
        assert reasons_for(order([("SKU-1", 2, "100.00"), ("SKU-2", 1, "199.00")])) == []

    def test_unknown_sku(self) -> None:
        assert reasons_for(order([("SKU-1", 1, "100"), ("SKU-NOPE", 1, "1")])) == ["line 2: unknown SKU SKU-NOPE"]

    def test_inactive_sku(self) -> None:
        assert reasons_for(order([("SKU-OLD", 1, "99.00")])) == ["line 1: SKU SKU-OLD is not active"]

    def test_unknown_customer(self) -> None:
        assert reasons_for(order(customer_id="C-404"), customer_known=False) == ["unknown customer C-404"]

    def test_duplicate_sku_lines(self) -> None:
        reasons = reasons_for(order([("SKU-1", 1, "100"), ("SKU-2", 1, "199"), ("SKU-1", 2, "100")]))
        assert reasons == ["line 3: SKU SKU-1 appears on more than one line"]

    @pytest.mark.parametrize("price", ["95.00", "100.00", "105.00"])
    def test_price_inside_tolerance_including_the_boundary(self, price: str) -> None:
        assert reasons_for(order([("SKU-1", 1, price)])) == []

    @pytest.mark.parametrize("price", ["94.99", "105.01", "0.00", "1000.00"])
    def test_price_outside_tolerance_either_way(self, price: str) -> None:
        reasons = reasons_for(order([("SKU-1", 1, price)]))
        assert len(reasons) == 1
        assert reasons[0].startswith(f"line 1: unit price {price} for SKU-1 is outside")
        assert "100.00" in reasons[0]

    def test_price_policy_function(self) -> None:
        assert price_within_policy(D("95.00"), D("100.00"), D("0.05"))
        assert price_within_policy(D("105.00"), D("100.00"), D("0.05"))
        assert not price_within_policy(D("94.99"), D("100.00"), D("0.05"))
        assert not price_within_policy(D("105.01"), D("100.00"), D("0.05"))
        assert price_within_policy(D("100.00"), D("100.00"), D("0"))
        assert not price_within_policy(D("100.01"), D("100.00"), D("0"))

    def test_empty_address_fields_are_listed(self) -> None:
        ship_to = dict(ADDRESS, phone="", city="   ", postcode="")  # whitespace-only counts as empty
        reasons = reasons_for(order(ship_to=ship_to))
        assert reasons == ["ship-to address incomplete: missing phone, city"]

    def test_all_required_address_fields_missing(self) -> None:
        reasons = reasons_for(order(ship_to={}))
        assert reasons == ["ship-to address incomplete: missing " + ", ".join(REQUIRED_ADDRESS_FIELDS)]
        assert set(REQUIRED_ADDRESS_FIELDS) == {"name", "phone", "region", "province", "city", "address"}

    def test_postcode_is_optional(self) -> None:
        assert reasons_for(order(ship_to=dict(ADDRESS, postcode=""))) == []

    def test_every_reason_is_reported_together(self) -> None:
        o = order(
            [
                ("SKU-NOPE", 1, "1.00"),
                ("SKU-OLD", 1, "50.00"),  # inactive and far below list price
                ("SKU-1", 1, "100.00"),
                ("SKU-1", 1, "100.00"),
            ],
            customer_id="C-404",
            ship_to=dict(ADDRESS, name="", address=""),
        )
        assert reasons_for(o, customer_known=False) == [
            "unknown customer C-404",
            "ship-to address incomplete: missing name, address",
            "line 1: unknown SKU SKU-NOPE",
            "line 2: SKU SKU-OLD is not active",
            "line 2: unit price 50.00 for SKU-OLD is outside 5% of list price 99.00",
            "line 4: SKU SKU-1 appears on more than one line",
        ]
