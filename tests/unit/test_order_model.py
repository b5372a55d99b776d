"""models.order: the canonical order contract every channel maps onto."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from models.order import Order, OrderLine
from workflows.contract import order_no_of, order_workflow_id


def payload(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_no": "SO-2026-0001",
        "channel": "web",
        "customer_id": "C-1001",
        "sales_rep": "alice",
        "currency": "CNY",
        "order_type": "standard",
        "payment": {"method": "credit", "paid": False},
        "ship_to": {
            "name": "张三",
            "phone": "13800000000",
            "region": "华东",
            "province": "上海",
            "city": "上海",
            "address": "浦东新区 XX 路 1 号",
            "postcode": "200120",
        },
        "lines": [{"sku": "SKU-1001", "qty": 2, "unit_price": "199.00"}],
    }
    data.update(changes)
    return data


def with_line(**line: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sku": "SKU-1001", "qty": 1, "unit_price": "199.00"}
    base.update(line)
    return payload(lines=[base])


def refused_at(data: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(ValidationError) as caught:
        Order.model_validate(data)
    return [error["loc"] for error in caught.value.errors()]


class TestQuantity:
    @pytest.mark.parametrize("qty", [0, -1, -100])
    def test_zero_or_negative_refused(self, qty: int) -> None:
        assert refused_at(with_line(qty=qty)) == [("lines", 0, "qty")]

    @pytest.mark.parametrize("qty", [1.5, "2.5"])
    def test_fractional_quantity_refused(self, qty: object) -> None:
        assert refused_at(with_line(qty=qty)) == [("lines", 0, "qty")]

    def test_one_is_fine_and_stays_int(self) -> None:
        line = Order.model_validate(with_line(qty="1")).lines[0]
        assert line.qty == 1
        assert isinstance(line.qty, int)

    def test_no_lines_refused(self) -> None:
        assert refused_at(payload(lines=[])) == [("lines",)]


class TestMoney:
    @pytest.mark.parametrize("price", ["199.001", "0.999", Decimal("1.005")])
    def test_more_than_two_decimal_places_refused(self, price: object) -> None:
        assert refused_at(with_line(unit_price=price)) == [("lines", 0, "unit_price")]

    def test_negative_price_refused(self) -> None:
        assert refused_at(with_line(unit_price="-0.01")) == [("lines", 0, "unit_price")]

    @pytest.mark.parametrize("price", ["199", "199.0", "199.00", "199.000", Decimal("199"), 199, "1.99E2"])
    def test_one_representation_per_price(self, price: object) -> None:
        line = Order.model_validate(with_line(unit_price=price)).lines[0]
        assert line.unit_price == Decimal("199.00")
        assert str(line.unit_price) == "199.00"

    def test_199_and_199_00_give_the_same_content_hash(self) -> None:
        a = Order.model_validate(with_line(unit_price="199"))
        b = Order.model_validate(with_line(unit_price="199.00"))
        c = Order.model_validate(with_line(unit_price=Decimal("199.0")))
        assert a.content_hash() == b.content_hash() == c.content_hash()

    def test_zero_and_minus_zero_are_the_same_price(self) -> None:
        a = Order.model_validate(with_line(unit_price="0"))
        b = Order.model_validate(with_line(unit_price="-0"))
        assert str(b.lines[0].unit_price) == "0.00"
        assert a.content_hash() == b.content_hash()

    def test_total_is_exact(self) -> None:
        order = Order.model_validate(
            payload(
                lines=[
                    {"sku": "A", "qty": 3, "unit_price": "0.10"},
                    {"sku": "B", "qty": 1, "unit_price": "0.20"},
                    {"sku": "C", "qty": 1000, "unit_price": "12345.67"},
                ]
            )
        )
        assert order.total == Decimal("12345670.50")
        assert str(order.total) == "12345670.50"


class TestContentHash:
    def test_same_content_same_hash(self) -> None:
        assert Order.model_validate(payload()).content_hash() == Order.model_validate(payload()).content_hash()

    def test_dict_key_order_does_not_matter(self) -> None:
        data = payload()
        reordered = dict(reversed(list(copy.deepcopy(data).items())))
        assert Order.model_validate(reordered).content_hash() == Order.model_validate(data).content_hash()

    def test_surrounding_whitespace_does_not_matter(self) -> None:
        padded = with_line(sku="  SKU-1001 ")
        assert Order.model_validate(padded).content_hash() == Order.model_validate(with_line()).content_hash()

    @pytest.mark.parametrize(
        "change",
        [
            {"lines": [{"sku": "SKU-1001", "qty": 3, "unit_price": "199.00"}]},
            {"lines": [{"sku": "SKU-1001", "qty": 2, "unit_price": "199.01"}]},
            {"lines": [{"sku": "SKU-1002", "qty": 2, "unit_price": "199.00"}]},
            {"customer_id": "C-1002"},
            {"payment": {"method": "prepaid", "paid": True}},
            {"order_type": "sample"},
        ],
    )
    def test_any_content_change_changes_the_hash(self, change: dict[str, Any]) -> None:
        assert Order.model_validate(payload(**change)).content_hash() != Order.model_validate(payload()).content_hash()

    def test_defaults_hash_like_their_explicit_values(self) -> None:
        explicit = payload()
        implicit = {k: v for k, v in payload().items() if k not in {"channel", "currency", "order_type", "payment"}}
        assert Order.model_validate(implicit).content_hash() == Order.model_validate(explicit).content_hash()


class TestExtraFields:
    @pytest.mark.parametrize(
        ("data", "loc"),
        [
            (payload(discount="10"), ("discount",)),
            (with_line(colour="red"), ("lines", 0, "colour")),
            (payload(ship_to={"name": "x", "street2": "y"}), ("ship_to", "street2")),
            (payload(payment={"method": "credit", "card": "4111"}), ("payment", "card")),
        ],
    )
    def test_unknown_fields_refused_at_every_level(self, data: dict[str, Any], loc: tuple[str | int, ...]) -> None:
        assert refused_at(data) == [loc]

    def test_unknown_enum_values_refused(self) -> None:
        assert refused_at(payload(order_type="gift")) == [("order_type",)]
        assert refused_at(payload(payment={"method": "barter"})) == [("payment", "method")]

    @pytest.mark.parametrize("currency", ["cny", "CN", "CNYY", "C1Y"])
    def test_currency_is_three_capitals(self, currency: str) -> None:
        assert refused_at(payload(currency=currency)) == [("currency",)]


class TestOrderNo:
    @pytest.mark.parametrize("order_no", ["SO-2026-0001", "a", "9", "TB_123.45-x", "A" * 64])
    def test_valid(self, order_no: str) -> None:
        order = Order.model_validate(payload(order_no=order_no))
        assert order.order_no == order_no
        workflow_id = order_workflow_id(order.order_no)
        assert workflow_id == f"order-{order_no}"
        assert order_no_of(workflow_id) == order_no  # the contract reads the number back out of the id

    @pytest.mark.parametrize(
        "order_no",
        ["", "-SO-1", ".SO-1", "_SO", "SO 1", "SO/1", "SO#1", "订单1", "A" * 65, "SO-1\n", " SO-1", "SO-1 "],
    )
    def test_invalid(self, order_no: str) -> None:
        assert refused_at(payload(order_no=order_no)) == [("order_no",)]


class TestOrderLineDirectly:
    def test_frozen(self) -> None:
        line = OrderLine(sku="A", qty=1, unit_price=Decimal("1"))
        with pytest.raises(ValidationError):
            line.qty = 2  # type: ignore[misc]

    def test_empty_sku_refused(self) -> None:
        with pytest.raises(ValidationError):
            OrderLine(sku="   ", qty=1, unit_price=Decimal("1"))
