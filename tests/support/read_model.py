"""Orders written straight into the read model, for tests of the queries and pages that read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from core.db import unit_of_work
from models.status import OrderStatus
from models.tables import SalesOrder
from tests.support.orders import make_order

DAY = datetime(2026, 11, 20, 9, tzinfo=UTC)


def add_order(
    engine: Engine, number: str, *, rep: str, sku: str, customer: str = "C-1001", days: int = 0, qty: int = 1
) -> None:
    order = make_order(number, [(sku, qty, "10.00")], customer_id=customer).model_copy(update={"sales_rep": rep})
    at = DAY + timedelta(days=days)
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=number, workflow_id=f"order-{number}", customer_id=order.customer_id, channel=order.channel,
                sales_rep=rep, order_type=order.order_type.value, payment_method=order.payment.method.value,
                currency=order.currency, total=order.total, status=OrderStatus.RECEIVED.value, paid=False,
                payload=order.model_dump(mode="json"), content_hash=order.content_hash(), created_at=at, updated_at=at,
            )
        )  # fmt: skip
