"""Shopify order webhooks (topics `orders/create`, `orders/paid`): the REST Admin API Order as the body.

Signature (shopify.dev, "Deliver webhooks through HTTPS", verify step): header `X-Shopify-Hmac-Sha256` =
base64(HMAC-SHA256(app client secret, raw body)). The topic is in `X-Shopify-Topic` (not signed: Shopify signs
the body only); other topics, and orders cancelled before we saw them, are not new orders.

Mapping: order_no `SHOPIFY-<id>`; line_items[].sku/quantity/price (the seller's SKU is ours, the unit price
before discounts, in the shop currency `currency`); shipping_address -> ship_to (province by province_code
first, Chinese addresses only). Payment: financial_status "paid" -> prepaid, paid; a cash-on-delivery gateway
-> cod; anything else -> prepaid, not paid yet.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from integrations.channels.base import (
    ChannelOrder,
    OrderOwner,
    PlatformId,
    PlatformModel,
    SellerSku,
    WholeNumber,
    build_order,
    header,
    hmac_sha256,
    parse_json,
    signature_matches,
    validate,
)
from integrations.channels.regions import find_province
from models.order import PaymentMethod

CHANNEL: Final = "shopify"
SIGNATURE_HEADER: Final = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER: Final = "X-Shopify-Topic"
ORDER_TOPICS: Final = frozenset({"orders/create", "orders/paid"})


class ShopifyAddress(PlatformModel):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None


class ShopifyLineItem(PlatformModel):
    sku: SellerSku
    quantity: WholeNumber
    price: Decimal


class ShopifyOrder(PlatformModel):
    id: PlatformId
    currency: str
    financial_status: str | None = None
    gateway: str | None = None  # deprecated by Shopify, still sent
    payment_gateway_names: list[str | None] = []
    cancelled_at: str | None = None
    phone: str | None = None
    line_items: list[ShopifyLineItem]
    shipping_address: ShopifyAddress | None = None  # none for pickup and digital orders


def sign(body: bytes, secret: str) -> dict[str, str]:
    """The headers Shopify sends with an `orders/create` webhook of `body`."""
    signature = base64.b64encode(hmac_sha256(secret, body)).decode()
    return {SIGNATURE_HEADER: signature, TOPIC_HEADER: "orders/create"}


def verify(body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    return signature_matches(sign(body, secret)[SIGNATURE_HEADER], header(headers, SIGNATURE_HEADER))


def read_order(body: bytes, headers: Mapping[str, str], owner: OrderOwner) -> ChannelOrder | None:
    """A signed webhook as a new order; None for topics and orders that are not new orders."""
    topic = (header(headers, TOPIC_HEADER) or "").strip()
    if topic not in ORDER_TOPICS:
        return None
    shop_order = validate(ShopifyOrder, parse_json(body))
    if shop_order.cancelled_at:
        return None
    fields = {
        "order_no": f"SHOPIFY-{shop_order.id}",
        "channel": CHANNEL,
        "currency": shop_order.currency.strip().upper(),
        "payment": _payment(shop_order),
        "ship_to": _ship_to(shop_order.shipping_address or ShopifyAddress(), shop_order.phone),
        "lines": [{"sku": item.sku, "qty": item.quantity, "unit_price": item.price} for item in shop_order.line_items],
    }
    order = build_order(fields, owner)
    return ChannelOrder(order=order, channel_order_id=shop_order.id, event=topic)


def _is_cash_on_delivery(gateway: str) -> bool:
    # "Cash on Delivery (COD)" (the manual payment method's name), "cash_on_delivery" (its gateway handle).
    return "cash on delivery" in gateway.replace("_", " ").casefold()


def _payment(shop_order: ShopifyOrder) -> dict[str, object]:
    if (shop_order.financial_status or "").strip().casefold() == "paid":
        return {"method": PaymentMethod.PREPAID, "paid": True}
    gateways = [shop_order.gateway, *shop_order.payment_gateway_names]
    if any(gateway and _is_cash_on_delivery(gateway) for gateway in gateways):
        return {"method": PaymentMethod.COD, "paid": False}
    return {"method": PaymentMethod.PREPAID, "paid": False}


def _ship_to(address: ShopifyAddress, order_phone: str | None) -> dict[str, str]:
    in_china = (address.country_code or "CN").strip().upper() == "CN"
    # Province codes mean other places elsewhere ("SC": Sichuan, or South Carolina).
    province = (find_province(address.province_code) or find_province(address.province)) if in_china else None
    name = address.name or " ".join(part for part in (address.first_name, address.last_name) if part)
    return {
        "name": name,
        "phone": address.phone or order_phone or "",
        "region": province.region if province else "",
        "province": province.name if province else (address.province or ""),
        "city": address.city or "",
        "address": " ".join(part.strip() for part in (address.address1, address.address2) if part and part.strip()),
        "postcode": address.zip or "",
    }
