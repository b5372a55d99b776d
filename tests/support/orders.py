"""Sample orders for tests and the demo."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from models.order import Order

SHANGHAI = {
    "name": "张三",
    "phone": "13800000000",
    "region": "华东",
    "province": "上海",
    "city": "上海",
    "address": "浦东新区 XX 路 1 号",
    "postcode": "200120",
}


def make_order(order_no: str, lines: list[tuple[str, int, str]] | None = None, **fields: Any) -> Order:
    data: dict[str, Any] = {
        "order_no": order_no,
        "channel": "web",
        "customer_id": "C-1001",
        "sales_rep": "alice",
        "currency": "CNY",
        "order_type": "standard",
        "payment": {"method": "credit", "paid": False},
        "ship_to": SHANGHAI,
        "lines": [
            {"sku": sku, "qty": qty, "unit_price": Decimal(price)}
            for sku, qty, price in (lines or [("SKU-1001", 2, "199.00")])
        ],
    }
    data.update(fields)
    return Order.model_validate(data)
