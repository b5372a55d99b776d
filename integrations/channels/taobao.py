"""Taobao/Tmall trade pushes: the TOP Trade structure (as taobao.trade.fullinfo.get returns it) as the body, bare
or in its API envelope `{"trade_fullinfo_get_response": {"trade": {...}}}`.

Signature. TOP signs API calls by sorting the text parameters by name, concatenating name+value, appending the
body when there is one, and signing with the app secret (sign_method md5, hmac or hmac-sha256), the digest in
upper-case hex (open.taobao.com "API调用方法详解", docId 101617; the Qimen push protocol appends the body the
same way). TMC itself delivers over a long-lived connection and documents no HTTP signature, so for this push,
which carries no text parameters, the string to sign is the raw body:
    header `X-Top-Sign` = upper-case hex HMAC-SHA256(channel_taobao_secret, raw body)   (sign_method hmac-sha256)
`X-Top-Appkey`, if sent, is informational and not checked.

Trade status decides: WAIT_SELLER_SEND_GOODS (paid, or a cash-on-delivery trade, type "cod", placed) is a new
order; unpaid trades (WAIT_BUYER_PAY, TRADE_NO_CREATE_PAY, ...) and trades already past that point are not
(None: we take a trade when it becomes paid). Sub-orders closed by a refund are left out. The seller's SKU
code (outer_sku_id, else the item's outer_iid) is our SKU; `price` the unit price; currency CNY.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Final, Self

from pydantic import BeforeValidator, model_validator

from integrations.channels.base import (
    ChannelOrder,
    ChannelPayloadError,
    OrderOwner,
    PlatformId,
    PlatformModel,
    WholeNumber,
    build_order,
    hex_hmac_headers,
    hex_hmac_matches,
    parse_json,
    validate,
)
from integrations.channels.regions import find_province
from models.order import PaymentMethod

CHANNEL: Final = "taobao"
SIGNATURE_HEADER: Final = "X-Top-Sign"
ENVELOPE: Final = "trade_fullinfo_get_response"

NEW_ORDER_STATUS: Final = "WAIT_SELLER_SEND_GOODS"
NOT_NEW_ORDER_STATUSES: Final = frozenset(
    {
        # not paid yet
        "TRADE_NO_CREATE_PAY",
        "WAIT_BUYER_PAY",
        "PAY_PENDING",
        "WAIT_PRE_AUTH_CONFIRM",
        # already past "to ship", or never to ship
        "PAID_FORBID_CONSIGN",
        "SELLER_CONSIGNED_PART",
        "WAIT_BUYER_CONFIRM_GOODS",
        "TRADE_BUYER_SIGNED",
        "TRADE_FINISHED",
        "TRADE_CLOSED",
        "TRADE_CLOSED_BY_TAOBAO",
    }
)
CLOSED_SUB_ORDER_STATUSES: Final = frozenset({"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"})


class TaobaoSubOrder(PlatformModel):
    outer_sku_id: str | None = None
    outer_iid: str | None = None
    num: WholeNumber
    price: Decimal
    status: str | None = None

    @model_validator(mode="after")
    def _has_seller_sku(self) -> Self:
        if not self.sku:
            raise ValueError("no outer_sku_id or outer_iid: the seller's SKU code is our SKU")
        return self

    @property
    def sku(self) -> str:
        return (self.outer_sku_id or "").strip() or (self.outer_iid or "").strip()


def _sub_orders(value: object) -> object:
    # TOP's JSON wraps lists in an object named after the element: "orders": {"order": [...]}.
    return value.get("order", value) if isinstance(value, dict) else value


class TaobaoTradeStatus(PlatformModel):
    status: str


class TaobaoTrade(TaobaoTradeStatus):
    tid: PlatformId
    type: str | None = None
    receiver_name: str | None = None
    receiver_mobile: str | None = None
    receiver_phone: str | None = None
    receiver_state: str | None = None
    receiver_city: str | None = None
    receiver_district: str | None = None
    receiver_town: str | None = None
    receiver_address: str | None = None
    receiver_zip: str | None = None
    orders: Annotated[list[TaobaoSubOrder], BeforeValidator(_sub_orders)]


def sign(body: bytes, secret: str) -> dict[str, str]:
    return hex_hmac_headers(SIGNATURE_HEADER, body, secret)


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    return hex_hmac_matches(SIGNATURE_HEADER, body, headers, secret)


def read_order(body: bytes, headers: Mapping[str, str], owner: OrderOwner) -> ChannelOrder | None:
    """A signed trade push as a new order; None for trades that are not (yet) orders to ship."""
    data, prefix = _unwrap(parse_json(body))
    status = validate(TaobaoTradeStatus, data, prefix).status.strip()
    if status in NOT_NEW_ORDER_STATUSES:
        return None
    if status != NEW_ORDER_STATUS:
        raise ChannelPayloadError([f"{prefix or 'body'}.status: unknown trade status {status[:40]!r}"])
    trade = validate(TaobaoTrade, data, prefix)
    fields = {
        "order_no": f"TAOBAO-{trade.tid}",
        "channel": CHANNEL,
        "currency": "CNY",
        "payment": _payment(trade),
        "ship_to": _ship_to(trade),
        "lines": [
            {"sku": sub.sku, "qty": sub.num, "unit_price": sub.price}
            for sub in trade.orders
            if (sub.status or "").strip() not in CLOSED_SUB_ORDER_STATUSES
        ],
    }
    return ChannelOrder(order=build_order(fields, owner), channel_order_id=trade.tid, event=status)


def _payment(trade: TaobaoTrade) -> dict[str, object]:
    # Waiting to ship means paid, except for a cash-on-delivery trade (type "cod"), paid to the courier later.
    if (trade.type or "").strip().casefold() == "cod":
        return {"method": PaymentMethod.COD, "paid": False}
    return {"method": PaymentMethod.PREPAID, "paid": True}


def _unwrap(data: object) -> tuple[object, str]:
    if isinstance(data, dict) and ENVELOPE in data:
        envelope = data[ENVELOPE]
        return (envelope.get("trade"), f"{ENVELOPE}.trade") if isinstance(envelope, dict) else (envelope, ENVELOPE)
    return data, ""


def _ship_to(trade: TaobaoTrade) -> dict[str, str]:
    province = find_province(trade.receiver_state)
    street = (trade.receiver_address or "").strip()
    # receiver_address is usually the street alone; district and town are separate fields unless repeated there.
    areas = [part.strip() for part in (trade.receiver_district, trade.receiver_town) if part and part.strip()]
    return {
        "name": trade.receiver_name or "",
        "phone": trade.receiver_mobile or trade.receiver_phone or "",
        "region": province.region if province else "",
        "province": province.name if province else (trade.receiver_state or ""),
        "city": trade.receiver_city or "",
        "address": " ".join([*(area for area in areas if area not in street), street]).strip(),
        "postcode": trade.receiver_zip or "",
    }
