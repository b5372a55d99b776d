"""How the demo's orders come in: through the front door, as integrations send them. Web and CRM orders are
POSTed to /orders with the demo shop's API token; Shopify and Taobao orders arrive as the platforms' own
signed webhooks (/webhooks/channels/...), mapped to canonical orders by the API."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import Engine

from core.config import Settings
from core.db import unit_of_work
from integrations.channels import read_channel_order, sign
from models.order import Order
from models.status import Role
from services.errors import CommandError
from services.users import reissue_token

DEMO_INTEGRATION_USER = "demo-shop"  # the web shop integration the demo plays (role ops: it submits paid orders)


def integration_token(engine: Engine) -> str:
    """The demo shop's token, issued afresh each run (its earlier one stops working)."""
    with unit_of_work(engine) as session:
        return reissue_token(session, DEMO_INTEGRATION_USER, Role.OPS)


def shopify_webhook(order: Order, platform_id: int) -> dict[str, Any]:
    """A Shopify `orders/create` payload (REST Admin API order) for the canonical order's content, paid."""
    to = order.ship_to
    return {
        "id": platform_id,
        "name": f"#{platform_id % 100000}",
        "currency": order.currency,
        "financial_status": "paid",
        "gateway": "alipay",
        "payment_gateway_names": ["alipay"],
        "line_items": [{"sku": line.sku, "quantity": line.qty, "price": str(line.unit_price)} for line in order.lines],
        "shipping_address": {
            "first_name": to.name[1:],
            "last_name": to.name[:1],
            "phone": to.phone,
            "address1": to.address,
            "city": to.city,
            "province": to.province,
            "zip": to.postcode,
            "country_code": "CN",
        },
    }


def taobao_push(order: Order, platform_id: int) -> dict[str, Any]:
    """A Taobao TOP trade (paid, waiting for the seller to ship) for the canonical order's content."""
    to = order.ship_to
    return {
        "tid": platform_id,
        "status": "WAIT_SELLER_SEND_GOODS",
        "type": "fixed",
        "receiver_name": to.name,
        "receiver_mobile": to.phone,
        "receiver_state": to.province,
        "receiver_city": to.city,
        "receiver_address": to.address,
        "receiver_zip": to.postcode,
        "orders": {
            "order": [
                {"outer_sku_id": line.sku, "num": line.qty, "price": str(line.unit_price)} for line in order.lines
            ]
        },
    }


PUSHES = {"shopify": shopify_webhook, "taobao": taobao_push}


def channel_body(order: Order, platform_id: int, settings: Settings) -> tuple[bytes, dict[str, str], Order]:
    """The signed platform webhook for `order` and the canonical order the API will make of it."""
    body = json.dumps(PUSHES[order.channel](order, platform_id), ensure_ascii=False).encode()
    headers = sign(order.channel, body, settings)
    mapped = read_channel_order(order.channel, body, headers, settings)
    if mapped is None:
        raise CommandError(f"the demo's {order.channel} webhook is not a new order")
    return body, headers, mapped.order


async def send(http: httpx.AsyncClient, settings: Settings, token: str, order: Order, platform_id: int) -> Order:
    """Submit one demo order through the API; returns the order as the API took it (channel orders get the
    platform's order number)."""
    try:
        if order.channel in PUSHES:
            body, headers, taken = channel_body(order, platform_id, settings)
            answer = await http.post(f"/webhooks/channels/{order.channel}", content=body, headers=headers)
        else:
            taken = order
            answer = await http.post(
                "/orders", json=order.model_dump(mode="json"), headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as exc:
        raise CommandError(
            f"the API at {settings.api_url} is unreachable ({exc}); is the stack up? (make up)"
        ) from None
    if answer.status_code not in (200, 202):
        raise CommandError(
            f"the API refused demo order {order.order_no}: HTTP {answer.status_code} {answer.text[:200]}"
        )
    return taken
