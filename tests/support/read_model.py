"""Orders written straight into the read model, for tests of the queries and pages that read it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from core.db import unit_of_work
from models.status import OrderStatus
from models.tables import OrderEvent, SalesOrder
from services import order_facts
from services.order_facts import add_lines
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


def add_order_with_history(
    engine: Engine,
    number: str,
    steps: Sequence[tuple[str, float]],
    *,
    rep: str = "alice",
    lines: list[tuple[str, int, str]] | None = None,
    start: datetime = DAY,
    channel: str = "web",
) -> None:
    """An order as the workflow would leave it: its row, lines and one event per (status, minutes after `start`),
    with the KPI read model derived by services/order_facts.py."""
    order = make_order(number, lines or [("SKU-1001", 1, "10.00")]).model_copy(
        update={"sales_rep": rep, "channel": channel}
    )
    last = steps[-1][0] if steps else OrderStatus.RECEIVED.value
    with unit_of_work(engine) as session:
        session.add(
            SalesOrder(
                order_no=number, workflow_id=f"order-{number}", customer_id=order.customer_id, channel=channel,
                sales_rep=rep, order_type=order.order_type.value, payment_method=order.payment.method.value,
                currency=order.currency, total=order.total, status=last, paid=False,
                payload=order.model_dump(mode="json"), content_hash=order.content_hash(), created_at=start,
                updated_at=start + timedelta(minutes=steps[-1][1] if steps else 0),
                dispatch_by=start + timedelta(hours=48),
            )
        )  # fmt: skip
        add_lines(session, order)
        for seq, (status, minutes) in enumerate(steps, start=1):
            session.add(OrderEvent(order_no=number, seq=seq, status=status, at=start + timedelta(minutes=minutes)))
        order_facts.refresh(session, number, ZoneInfo("UTC"))
