"""Channel webhook mappers: platform payloads (their own shapes and signatures) -> canonical orders."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.config import Settings
from integrations.channels import (
    CHANNELS,
    ChannelOrder,
    ChannelPayloadError,
    ChannelSignatureError,
    UnknownChannel,
    read_channel_order,
    sign,
)
from integrations.channels.regions import REGIONS, find_province, region_of
from models.order import Address, Order, OrderLine, Payment, PaymentMethod

SAMPLES = Path(__file__).parent / "samples" / "channels"
SETTINGS = Settings(
    local_secrets=False,
    channel_shopify_secret="shpss_unit_test_secret",
    channel_taobao_secret="top-unit-test-secret",
    channel_jd_secret="jd-unit-test-secret",
    channel_customer_ids={"shopify": "C-1001", "taobao": "C-1003", "jd": "C-1002"},
    channel_sales_reps={"shopify": "bob", "taobao": "carol", "jd": "dave"},
)
SAMPLE_OF = {
    "shopify": "shopify_orders_create.json",
    "taobao": "taobao_trade_paid.json",
    "jd": "jd_order_wait_seller_stock_out.json",
}
TWO_LINES = [
    OrderLine(sku="SKU-1001", qty=2, unit_price=Decimal("199.00")),
    OrderLine(sku="SKU-1002", qty=1, unit_price=Decimal("499.00")),
]


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def to_body(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def push(channel: str, data: object, **extra_headers: str) -> ChannelOrder | None:
    """`data` sent as the platform sends it: JSON body, signed."""
    body = data if isinstance(data, bytes) else to_body(data)
    overridden = {name.lower() for name in extra_headers}
    signed = {name: value for name, value in sign(channel, body, SETTINGS).items() if name.lower() not in overridden}
    headers = signed | extra_headers
    return read_channel_order(channel, body, headers, SETTINGS)


def pushed_order(channel: str, data: object) -> Order:
    result = push(channel, data)
    assert result is not None
    return result.order


def payload_errors(channel: str, data: object) -> list[str]:
    with pytest.raises(ChannelPayloadError) as caught:
        push(channel, data)
    return caught.value.errors


# --- mapping -------------------------------------------------------------------------------------------------


def test_a_shopify_orders_create_webhook_maps_every_field() -> None:
    result = push("shopify", sample("shopify_orders_create.json"))

    assert result == ChannelOrder(
        order=Order(
            order_no="SHOPIFY-5731283206450",
            channel="shopify",
            customer_id="C-1001",
            sales_rep="bob",
            currency="CNY",
            payment=Payment(method=PaymentMethod.PREPAID, paid=True),
            ship_to=Address(
                name="张三",
                phone="+86 138 0000 0000",
                region="华东",
                province="上海",
                city="上海",
                address="浦东新区 XX 路 1 号",
                postcode="200120",
            ),
            lines=TWO_LINES,
        ),
        channel_order_id="5731283206450",
        event="orders/create",
    )


def test_a_paid_taobao_trade_maps_every_field_and_leaves_refunded_sub_orders_out() -> None:
    result = push("taobao", sample("taobao_trade_paid.json"))

    assert result == ChannelOrder(
        order=Order(
            order_no="TAOBAO-3847562910283746",
            channel="taobao",
            customer_id="C-1003",
            sales_rep="carol",
            currency="CNY",
            payment=Payment(method=PaymentMethod.PREPAID, paid=True),
            ship_to=Address(
                name="李四",
                phone="13900000002",
                region="华北",
                province="北京",
                city="北京市",
                address="朝阳区 望京街道阜通东大街 6 号",  # the town is already in receiver_address
                postcode="100102",
            ),
            lines=TWO_LINES,  # SKU-1002 from outer_iid (no outer_sku_id); SKU-1003 was refunded (TRADE_CLOSED)
        ),
        channel_order_id="3847562910283746",
        event="WAIT_SELLER_SEND_GOODS",
    )


def test_a_jd_order_waiting_for_stock_out_maps_every_field() -> None:
    result = push("jd", sample("jd_order_wait_seller_stock_out.json"))

    assert result == ChannelOrder(
        order=Order(
            order_no="JD-298765432101",
            channel="jd",
            customer_id="C-1002",
            sales_rep="dave",
            currency="CNY",
            payment=Payment(method=PaymentMethod.PREPAID, paid=True),
            ship_to=Address(
                name="王五",
                phone="13700000003",
                region="华南",
                province="广东",
                city="广州市",
                address="天河区珠江新城花城大道 1 号",  # province and city prefixes of fullAddress dropped
                postcode="",
            ),
            lines=TWO_LINES,
        ),
        channel_order_id="298765432101",
        event="WAIT_SELLER_STOCK_OUT",
    )


def test_envelopes_and_bare_objects_map_alike() -> None:
    trade = sample("taobao_trade_paid.json")["trade_fullinfo_get_response"]["trade"]
    assert pushed_order("taobao", trade) == pushed_order("taobao", sample("taobao_trade_paid.json"))
    jd_order = sample("jd_order_wait_seller_stock_out.json")
    envelope = {"jingdong_pop_order_get_responce": {"code": "0", "orderDetailInfo": {"orderInfo": jd_order}}}
    assert pushed_order("jd", envelope) == pushed_order("jd", jd_order)


@pytest.mark.parametrize(
    ("financial_status", "gateways", "expected"),
    [
        ("paid", ["alipay"], Payment(method=PaymentMethod.PREPAID, paid=True)),
        ("pending", ["Cash on Delivery (COD)"], Payment(method=PaymentMethod.COD, paid=False)),
        ("pending", ["cash_on_delivery"], Payment(method=PaymentMethod.COD, paid=False)),
        ("pending", ["bank_deposit"], Payment(method=PaymentMethod.PREPAID, paid=False)),
        ("authorized", ["alipay"], Payment(method=PaymentMethod.PREPAID, paid=False)),
    ],
)
def test_shopify_payment_follows_financial_status_and_gateway(
    financial_status: str, gateways: list[str], expected: Payment
) -> None:
    data = sample("shopify_orders_create.json") | {
        "financial_status": financial_status,
        "gateway": gateways[0],
        "payment_gateway_names": gateways,
    }
    assert pushed_order("shopify", data).payment == expected


def test_a_cash_on_delivery_taobao_trade_is_cod_and_unpaid() -> None:
    data = sample("taobao_trade_paid.json")
    data["trade_fullinfo_get_response"]["trade"]["type"] = "cod"
    assert pushed_order("taobao", data).payment == Payment(method=PaymentMethod.COD, paid=False)


@pytest.mark.parametrize(
    ("pay_type", "expected"),
    [
        ("1-货到付款", Payment(method=PaymentMethod.COD, paid=False)),
        ("4-在线支付", Payment(method=PaymentMethod.PREPAID, paid=True)),
        ("5", Payment(method=PaymentMethod.PREPAID, paid=True)),
        (4, Payment(method=PaymentMethod.PREPAID, paid=True)),
    ],
)
def test_jd_pay_type_decides_the_payment(pay_type: object, expected: Payment) -> None:
    data = sample("jd_order_wait_seller_stock_out.json") | {"payType": pay_type}
    assert pushed_order("jd", data).payment == expected


def test_a_shopify_order_outside_china_has_no_region_even_when_its_province_code_looks_chinese() -> None:
    data = sample("shopify_orders_create.json")
    data["shipping_address"] |= {"country_code": "US", "province": "South Carolina", "province_code": "SC"}
    ship_to = pushed_order("shopify", data).ship_to
    assert (ship_to.region, ship_to.province) == ("", "South Carolina")


def test_a_shopify_order_without_shipping_address_maps_with_an_empty_ship_to_for_business_validation() -> None:
    # Pickup and digital orders have none: the order is rejected with reasons downstream, not refused here
    # (a 4xx would make Shopify retry and eventually drop the subscription).
    data = sample("shopify_orders_create.json") | {"shipping_address": None}
    assert pushed_order("shopify", data).ship_to == Address()


def test_the_same_webhook_twice_maps_to_the_same_order() -> None:
    for channel, name in SAMPLE_OF.items():
        body = to_body(sample(name))
        first, second = push(channel, body), push(channel, body)
        assert first is not None and second is not None
        assert first.order.content_hash() == second.order.content_hash()


# --- events that are not new orders -------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["orders/updated", "orders/cancelled", "orders/fulfilled", "products/create"])
def test_shopify_topics_other_than_create_and_paid_are_not_orders(topic: str) -> None:
    assert push("shopify", sample("shopify_orders_create.json"), **{"X-Shopify-Topic": topic}) is None


def test_shopify_orders_paid_is_an_order_too() -> None:
    result = push("shopify", sample("shopify_orders_create.json"), **{"x-shopify-topic": "orders/paid"})
    assert result is not None and result.event == "orders/paid"


def test_a_shopify_order_cancelled_before_we_saw_it_is_not_an_order() -> None:
    data = sample("shopify_orders_create.json") | {"cancelled_at": "2026-11-22T10:20:00+08:00"}
    assert push("shopify", data) is None


def test_an_unpaid_taobao_trade_is_not_an_order_yet() -> None:
    assert push("taobao", sample("taobao_trade_wait_buyer_pay.json")) is None


@pytest.mark.parametrize("status", ["TRADE_NO_CREATE_PAY", "WAIT_BUYER_CONFIRM_GOODS", "TRADE_CLOSED_BY_TAOBAO"])
def test_taobao_trades_not_waiting_to_ship_are_not_orders_even_when_incomplete(status: str) -> None:
    assert push("taobao", {"tid": 1, "status": status}) is None


@pytest.mark.parametrize("state", ["FINISHED_L", "TRADE_CANCELED", "LOCKED", "WAIT_GOODS_RECEIVE_CONFIRM"])
def test_jd_orders_not_waiting_for_stock_out_are_not_orders(state: str) -> None:
    assert push("jd", {"orderId": "1", "orderState": state}) is None


# --- signatures ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_bad_signature_is_refused_before_the_body_is_parsed(channel: str) -> None:
    body = b"\xff\xfe this is not JSON {"
    headers = sign(channel, b"another body", SETTINGS)
    with pytest.raises(ChannelSignatureError, match="signature"):
        read_channel_order(channel, body, headers, SETTINGS)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_missing_signature_is_refused(channel: str) -> None:
    body = to_body(sample(SAMPLE_OF[channel]))
    with pytest.raises(ChannelSignatureError):
        read_channel_order(channel, body, {"X-Shopify-Topic": "orders/create"}, SETTINGS)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_tampered_body_or_another_secret_is_refused(channel: str) -> None:
    body = to_body(sample(SAMPLE_OF[channel]))
    tampered = body.replace(b"199.00", b"1.99")
    with pytest.raises(ChannelSignatureError):
        read_channel_order(channel, tampered, sign(channel, body, SETTINGS), SETTINGS)
    other = SETTINGS.model_copy(update={f"channel_{channel}_secret": "someone-elses-secret"})
    with pytest.raises(ChannelSignatureError):
        read_channel_order(channel, body, sign(channel, body, other), SETTINGS)


def test_headers_are_looked_up_whatever_their_case() -> None:
    body = to_body(sample("taobao_trade_paid.json"))
    signature = sign("taobao", body, SETTINGS)["X-Top-Sign"]
    assert read_channel_order("taobao", body, {"x-top-sign": signature.lower()}, SETTINGS) is not None


def test_the_signature_schemes_are_the_documented_ones() -> None:
    body = b'{"id": 1}'
    # Expected values from `openssl dgst -sha256 -hmac <secret>`, not from the code under test.
    assert sign("shopify", body, SETTINGS) == {
        "X-Shopify-Hmac-Sha256": "lJikBcuN+8/gdBiAbCl2s+S/Ij2Syzg9ysp9zR4hj1A=",  # base64
        "X-Shopify-Topic": "orders/create",
    }
    assert sign("taobao", body, SETTINGS) == {
        "X-Top-Sign": "FE6F2991B3C656C2658BD21ABBDCAFE4073CA4F02164734298A092E2B6542429"  # upper-case hex
    }
    assert sign("jd", body, SETTINGS) == {
        "X-Jd-Sign": "06047A8EF34724941B978943295BA8CC38B63A596E93175C0F4CD1892C044DFC"
    }


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_channel_without_a_secret_refuses_every_webhook(channel: str) -> None:
    unconfigured = SETTINGS.model_copy(update={f"channel_{channel}_secret": ""})
    with pytest.raises(ChannelSignatureError, match=f"channel {channel} has no webhook secret configured"):
        read_channel_order(channel, b"{}", {}, unconfigured)


def test_an_unknown_channel_is_a_value_error() -> None:
    with pytest.raises(UnknownChannel) as caught:
        read_channel_order("pinduoduo", b"{}", {}, SETTINGS)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(UnknownChannel):
        sign("pinduoduo", b"{}", SETTINGS)


# --- payload errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"\xff\xfe{}", b'{"id": NaN}', b"[" * 100_000])
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_a_signed_body_that_is_not_json_is_a_payload_error(channel: str, body: bytes) -> None:
    with pytest.raises(ChannelPayloadError) as caught:
        push(channel, body)
    assert caught.value.errors and caught.value.errors[0].startswith("body:")


def test_shopify_payload_errors_list_every_bad_field() -> None:
    data = sample("shopify_orders_create.json")
    del data["id"]
    del data["currency"]
    data["line_items"][0] |= {"sku": None, "quantity": "two"}
    data["line_items"][1] |= {"price": "free"}

    errors = payload_errors("shopify", data)

    assert [error.split(":")[0] for error in errors] == [
        "id",
        "currency",
        "line_items.0.sku",
        "line_items.0.quantity",
        "line_items.1.price",
    ]


def test_canonical_order_problems_are_listed_with_their_canonical_field() -> None:
    data = sample("shopify_orders_create.json") | {"currency": "yuan"}
    data["line_items"][0] |= {"quantity": 0, "price": "-1.00"}
    data["shipping_address"] |= {"name": "张" * 201}

    errors = payload_errors("shopify", data)

    assert [error.split(":")[0] for error in errors] == [
        "order.currency",
        "order.ship_to.name",
        "order.lines.0.qty",
        "order.lines.0.unit_price",
    ]


def test_taobao_payload_errors_list_every_bad_field() -> None:
    trade = sample("taobao_trade_paid.json")["trade_fullinfo_get_response"]["trade"]
    trade["tid"] = "not a tid!"
    trade["orders"]["order"][0] |= {"outer_sku_id": "", "outer_iid": None}
    trade["orders"]["order"][1] |= {"num": 1.5}

    errors = payload_errors("taobao", trade)

    assert [error.split(":")[0] for error in errors] == ["tid", "orders.0", "orders.1.num"]
    assert "outer_sku_id or outer_iid" in errors[1]


def test_jd_payload_errors_list_every_bad_field() -> None:
    data = sample("jd_order_wait_seller_stock_out.json") | {"payType": "9-以物易物"}
    data["itemInfoList"][1] |= {"outerSkuId": "", "itemTotal": "1e9", "jdPrice": None}

    errors = payload_errors("jd", data)

    assert [error.split(":")[0] for error in errors] == [
        "payType",
        "itemInfoList.1.outerSkuId",
        "itemInfoList.1.itemTotal",
        "itemInfoList.1.jdPrice",
    ]


@pytest.mark.parametrize(("channel", "status"), [("taobao", "WAIT_SELLER_SEND_GOODZ"), ("jd", "SHIPPED_MAYBE")])
def test_an_unknown_order_status_is_a_payload_error_not_a_silent_drop(channel: str, status: str) -> None:
    field = "status" if channel == "taobao" else "orderState"
    errors = payload_errors(channel, {field: status})
    assert errors == [f"body.{field}: unknown {'trade status' if channel == 'taobao' else 'order state'} {status!r}"]


def test_a_channel_without_customer_or_sales_rep_is_a_payload_error() -> None:
    unowned = SETTINGS.model_copy(update={"channel_customer_ids": {}, "channel_sales_reps": {}})
    body = to_body(sample("jd_order_wait_seller_stock_out.json"))
    with pytest.raises(ChannelPayloadError) as caught:
        read_channel_order("jd", body, sign("jd", body, unowned), unowned)
    assert caught.value.errors == [
        "settings.channel_customer_ids['jd']: not configured",
        "settings.channel_sales_reps['jd']: not configured",
    ]


def test_lone_surrogate_escapes_are_a_payload_error() -> None:
    # "\ud800" decodes to a str that could never be hashed or sent to Temporal: the canonical Order refuses it.
    body = to_body(sample("shopify_orders_create.json")).replace("张三".encode(), b"\\ud800")
    errors = payload_errors("shopify", body)
    assert errors == [
        "order.ship_to.name: Input should be a valid string, unable to parse raw data as a unicode string"
    ]


@pytest.mark.parametrize("quantity", ["1E+999999999", "2.5", "-1", "1e9", "true", '"2x"'])
def test_quantities_that_are_not_small_whole_numbers_are_payload_errors(quantity: str) -> None:
    body = to_body(sample("shopify_orders_create.json")).replace(b'"quantity": 2', f'"quantity": {quantity}'.encode())
    errors = payload_errors("shopify", body)
    assert errors[0].split(":")[0] in {"line_items.0.quantity", "order.lines.0.qty"}


# --- regions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "province", "region"),
    [
        ("上海", "上海", "华东"),
        ("上海市", "上海", "华东"),
        ("SH", "上海", "华东"),
        ("CN-SH", "上海", "华东"),
        ("Shanghai", "上海", "华东"),
        ("广东省", "广东", "华南"),
        ("GD", "广东", "华南"),
        ("Guangdong Sheng", "广东", "华南"),
        ("内蒙古自治区", "内蒙古", "华北"),
        ("Inner Mongolia", "内蒙古", "华北"),
        ("广西壮族自治区", "广西", "华南"),
        ("新疆维吾尔自治区", "新疆", "西北"),
        ("Shaanxi", "陕西", "西北"),
        ("Shanxi", "山西", "华北"),
        ("黑龙江省", "黑龙江", "东北"),
        ("YZ", "西藏", "西南"),
        ("湖北", "湖北", "华中"),
    ],
)
def test_provinces_in_every_spelling_find_their_region(text: str, province: str, region: str) -> None:
    found = find_province(text)
    assert found is not None and (found.name, found.region) == (province, region)
    assert region_of(text) == region


@pytest.mark.parametrize("text", ["", None, "香港", "Taiwan", "Atlantis", "广州市", "California"])
def test_unknown_places_have_no_region(text: str | None) -> None:
    assert find_province(text) is None and region_of(text) == ""


# The 31 provincial-level divisions of mainland China (ISO 3166-2:CN, 2017) with their short Chinese names.
MAINLAND = {
    "BJ": "北京", "TJ": "天津", "HE": "河北", "SX": "山西", "NM": "内蒙古", "LN": "辽宁", "JL": "吉林", "HL": "黑龙江",
    "SH": "上海", "JS": "江苏", "ZJ": "浙江", "AH": "安徽", "FJ": "福建", "JX": "江西", "SD": "山东", "HA": "河南",
    "HB": "湖北", "HN": "湖南", "GD": "广东", "GX": "广西", "HI": "海南", "CQ": "重庆", "SC": "四川", "GZ": "贵州",
    "YN": "云南", "XZ": "西藏", "SN": "陕西", "GS": "甘肃", "QH": "青海", "NX": "宁夏", "XJ": "新疆",
}  # fmt: skip


def test_every_province_is_found_in_each_written_form_and_every_region_has_provinces() -> None:
    regions: dict[str, set[str]] = {}
    for code, name in MAINLAND.items():
        found = {find_province(form) for form in (name, code, f"CN-{code}", code.lower())}
        assert len(found) == 1 and None not in found, (code, found)
        [province] = found
        assert province is not None and province.name == name and province.region in REGIONS
        regions.setdefault(province.region, set()).add(name)
    assert set(regions) == set(REGIONS) == {"华东", "华北", "华南", "华中", "西南", "西北", "东北"}
    assert len(regions["华东"]) >= 5 and regions["东北"] == {"辽宁", "吉林", "黑龙江"}
    for cross_border in ("香港", "HK", "CN-MO", "台湾", "TW"):  # shipped as cross-border, not by region
        assert find_province(cross_border) is None


# --- whatever arrives, correctly signed: an order, nothing, or a payload error ------------------------------

# Values the mappers look for, so arbitrary payloads often get past the first checks; and any text at all,
# lone surrogates included (sent as \ud800 escapes, as JSON allows).
FAMILIAR = st.sampled_from(["SKU-1001", "WAIT_SELLER_SEND_GOODS", "WAIT_SELLER_STOCK_OUT", "paid", "cod", "4", "CN"])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=()))
    | FAMILIAR,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12) | FAMILIAR, children, max_size=4)
    ),
    max_leaves=20,
)


def _first_element(container: Any) -> dict[str, Any]:
    """The address object itself, or the first line of a list (Taobao's wrapped in {"order": [...]})."""
    if isinstance(container, dict) and "order" in container:
        container = container["order"]
    element: dict[str, Any] = container[0] if isinstance(container, list) else container
    return element


def _mutations(channel: str) -> st.SearchStrategy[object]:
    """The channel's sample with one field (top level, address or first line) replaced by arbitrary JSON."""
    data = sample(SAMPLE_OF[channel])
    inner = data["trade_fullinfo_get_response"]["trade"] if channel == "taobao" else data
    nested = {
        "shopify": ("shipping_address", "line_items"),
        "taobao": ("orders",),
        "jd": ("consigneeInfo", "itemInfoList"),
    }

    def replace(choice: tuple[str, str | None], value: object) -> object:
        copy = json.loads(json.dumps(data))
        target = copy["trade_fullinfo_get_response"]["trade"] if channel == "taobao" else copy
        key, sub = choice
        if sub is None:
            target[key] = value
        else:
            _first_element(target[key])[sub] = value
        return copy

    choices: list[tuple[str, str | None]] = [(key, None) for key in inner]
    for key in nested[channel]:
        choices += [(key, sub) for sub in _first_element(inner[key])]
    return st.builds(replace, st.sampled_from(choices), JSON_VALUES)


def _assert_order_nothing_or_payload_error(channel: str, body: bytes) -> None:
    try:
        first = push(channel, body)
    except ChannelPayloadError as exc:
        assert exc.errors and all(isinstance(error, str) for error in exc.errors)
        return
    second = push(channel, body)
    if first is None:
        assert second is None
    else:
        assert second is not None and first.order.content_hash() == second.order.content_hash()


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=512))
@example(body=b'{"quantity": 1E+999999999}')
@example(body=b'{"status": "WAIT_SELLER_SEND_GOODS", "orders": {"order": [{"num": 1E+999999}]}}')
@example(body=b"9" * 5000)
def test_arbitrary_signed_bytes_never_raise_anything_else(channel: str, body: bytes) -> None:
    _assert_order_nothing_or_payload_error(channel, body)


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@settings(max_examples=150, deadline=None)
@given(data=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6))
def test_arbitrary_signed_json_objects_never_raise_anything_else(channel: str, data: dict[str, object]) -> None:
    _assert_order_nothing_or_payload_error(channel, json.dumps(data).encode())


@pytest.mark.parametrize("channel", sorted(CHANNELS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_samples_with_arbitrary_fields_never_raise_anything_else(channel: str, data: st.DataObject) -> None:
    mutated = data.draw(_mutations(channel))
    _assert_order_nothing_or_payload_error(channel, json.dumps(mutated).encode())
