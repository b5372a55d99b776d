"""JD.com (京东 POP) order pushes: the JOS order structure (OrderSearchInfo, as jingdong.pop.order.search/get
return it) as the body, bare or in the jingdong.pop.order.get envelope
`{"jingdong_pop_order_get_responce": {"orderDetailInfo": {"orderInfo": {...}}}}` (JOS spells it "responce").

Signature. JOS signs API calls as upper-case hex MD5(app secret + sorted name+value pairs + app secret)
(open.jd.com dev guide, "API签名"); its order messages arrive through JD's message service, which documents no
HTTP signature. For this push the string to sign is the raw body:
    header `X-Jd-Sign` = hex HMAC-SHA256(channel_jd_secret, raw body), upper-case like JOS signs (any case accepted)

orderState WAIT_SELLER_STOCK_OUT (等待出库: paid, or a COD order placed, and waiting for the seller to ship) is a
new order; the other states are not (None). payType "1-货到付款" is cash on delivery and "3-自提" is paid at the
pick-up point (cod, unpaid); every other pay type is paid before JD releases the order (prepaid, paid).
itemInfoList[].outerSkuId (the seller's SKU code) is our SKU, itemTotal the quantity, jdPrice the unit price.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Final

from pydantic import BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel

from integrations.channels.base import (
    ChannelOrder,
    ChannelPayloadError,
    OrderOwner,
    PlatformId,
    PlatformModel,
    SellerSku,
    WholeNumber,
    build_order,
    hex_hmac_headers,
    hex_hmac_matches,
    parse_json,
    validate,
)
from integrations.channels.regions import find_province
from models.order import PaymentMethod

CHANNEL: Final = "jd"
SIGNATURE_HEADER: Final = "X-Jd-Sign"
ENVELOPE: Final = "jingdong_pop_order_get_responce"

NEW_ORDER_STATE: Final = "WAIT_SELLER_STOCK_OUT"
NOT_NEW_ORDER_STATES: Final = frozenset(
    {
        "WAIT_SELLER_DELIVERY",  # cross-border (海外购) orders waiting for domestic delivery
        "SEND_TO_DISTRIBUTION_CENER",  # sic, JOS's spelling
        "DISTRIBUTION_CENTER_RECEIVED",
        "WAIT_GOODS_RECEIVE_CONFIRM",
        "RECEIPTS_CONFIRM",
        "FINISHED_L",
        "TRADE_CANCELED",
        "LOCKED",
        "PAUSE",
        "POP_ORDER_PAUSE",
        "WAIT_SEND_CODE",
    }
)
PAY_TYPES: Final = {
    "1": PaymentMethod.COD,  # 货到付款
    "2": PaymentMethod.PREPAID,  # 邮局汇款
    "3": PaymentMethod.COD,  # 自提: paid at the pick-up point
    "4": PaymentMethod.PREPAID,  # 在线支付
    "5": PaymentMethod.PREPAID,  # 公司转账
    "6": PaymentMethod.PREPAID,  # 银行卡转账
}


def _pay_type(value: object) -> object:
    # "4-在线支付" (JOS), "4" or 4.
    code = str(value).split("-", 1)[0].strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if code not in PAY_TYPES:
        raise ValueError(f"unknown payType (known: {', '.join(sorted(PAY_TYPES))})")
    return PAY_TYPES[code]


class JdModel(PlatformModel):
    """JOS names fields in camelCase (outerSkuId); errors name them that way too."""

    model_config = ConfigDict(alias_generator=to_camel)


class JdConsignee(JdModel):
    fullname: str | None = None
    mobile: str | None = None
    telephone: str | None = None
    province: str | None = None
    city: str | None = None
    county: str | None = None
    full_address: str | None = None


class JdItem(JdModel):
    outer_sku_id: SellerSku
    item_total: WholeNumber
    jd_price: Decimal


class JdOrderState(JdModel):
    order_state: str


class JdOrder(JdOrderState):
    order_id: PlatformId
    pay_type: Annotated[PaymentMethod, BeforeValidator(_pay_type)]
    consignee_info: JdConsignee | None = None
    item_info_list: list[JdItem]


def sign(body: bytes, secret: str) -> dict[str, str]:
    return hex_hmac_headers(SIGNATURE_HEADER, body, secret)


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    return hex_hmac_matches(SIGNATURE_HEADER, body, headers, secret)


def read_order(body: bytes, headers: Mapping[str, str], owner: OrderOwner) -> ChannelOrder | None:
    """A signed order push as a new order; None for orders not waiting to be shipped."""
    data, prefix = _unwrap(parse_json(body))
    state = validate(JdOrderState, data, prefix).order_state.strip()
    if state in NOT_NEW_ORDER_STATES:
        return None
    if state != NEW_ORDER_STATE:
        raise ChannelPayloadError([f"{prefix or 'body'}.orderState: unknown order state {state[:40]!r}"])
    jd_order = validate(JdOrder, data, prefix)
    fields = {
        "order_no": f"JD-{jd_order.order_id}",
        "channel": CHANNEL,
        "currency": "CNY",
        "payment": {"method": jd_order.pay_type, "paid": jd_order.pay_type != PaymentMethod.COD},
        "ship_to": _ship_to(jd_order.consignee_info or JdConsignee()),
        "lines": [
            {"sku": item.outer_sku_id, "qty": item.item_total, "unit_price": item.jd_price}
            for item in jd_order.item_info_list
        ],
    }
    return ChannelOrder(order=build_order(fields, owner), channel_order_id=jd_order.order_id, event=state)


def _unwrap(data: object) -> tuple[object, str]:
    if not (isinstance(data, dict) and ENVELOPE in data):
        return data, ""
    found: object = data[ENVELOPE]
    path = ENVELOPE
    for key in ("orderDetailInfo", "orderInfo"):
        found = found.get(key) if isinstance(found, dict) else None
        path = f"{path}.{key}"
    return found, path


def _ship_to(consignee: JdConsignee) -> dict[str, str]:
    province = find_province(consignee.province)
    # fullAddress repeats province and city in front ("上海上海市浦东新区…"); the district stays, as on a label.
    street = (consignee.full_address or "").strip()
    for prefix in (consignee.province, consignee.city):
        if prefix and prefix.strip():
            street = street.removeprefix(prefix.strip()).lstrip()
    return {
        "name": consignee.fullname or "",
        "phone": consignee.mobile or consignee.telephone or "",
        "region": province.region if province else "",
        "province": province.name if province else (consignee.province or ""),
        "city": consignee.city or "",
        "address": street,
        "postcode": "",  # JOS orders carry no postcode
    }
