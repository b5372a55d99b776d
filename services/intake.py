"""Order intake shared by the API's POST /orders and the channel webhooks: once per order, whatever retries."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client

from core.db import read_only, unit_of_work
from integrations.channels import CHANNELS
from models.order import Order
from models.status import Role
from models.tables import IntakeKey, SalesOrder
from services import order_commands
from services.errors import OrderConflict, Refused
from services.order_commands import SubmitAnswer
from workflows.contract import ErrorType

# Who may submit an order already marked paid (it skips the payment wait): integrations run with an ops token.
PAID_INTAKE_ROLES = frozenset({Role.OPS.value, Role.ADMIN.value})
# Order numbers the channel webhooks give their orders: nobody may take one first through POST /orders.
CHANNEL_PREFIXES = tuple(f"{channel.upper()}-" for channel in sorted(CHANNELS))


def intake_refusal(order: Order, *, user: str, role: str) -> Refused | None:
    """Why this person may not submit this order by hand (POST /orders, the console's form), or None."""
    if order.channel in CHANNELS or order.order_no.upper().startswith(CHANNEL_PREFIXES):
        return Refused(
            f"{order.channel} orders come in through POST /webhooks/channels/{{channel}}, signed by the platform",
            ErrorType.INVALID,
        )
    if role == Role.SALES.value and order.sales_rep != user:
        return Refused(
            f"{user} may submit only orders of their own (sales_rep {order.sales_rep}); "
            "integrations submit with an ops token",
            ErrorType.FORBIDDEN,
        )
    if order.payment.paid and role not in PAID_INTAKE_ROLES:
        return Refused(f"role {role} may not submit an order as paid", ErrorType.FORBIDDEN)
    return None


def claim_idempotency_key(engine: Engine, user: str, key: str, order: Order) -> None:
    """Bind the client's Idempotency-Key to this order the first time; later the same key must carry the same
    order (else OrderConflict). Two concurrent first uses: the primary key lets one win, the other re-reads."""
    for _ in range(2):
        with read_only(engine) as session:
            known = session.get(IntakeKey, (user, key))
            if known is not None:
                if known.order_no != order.order_no or known.content_hash != order.content_hash():
                    raise OrderConflict(
                        f"Idempotency-Key {key!r} was already used for order {known.order_no} with other content"
                    )
                return
        try:
            with unit_of_work(engine) as session:
                session.add(
                    IntakeKey(user_name=user, key=key, order_no=order.order_no, content_hash=order.content_hash())
                )
            return
        except IntegrityError:
            continue  # someone else claimed it between our read and write: compare with theirs
    raise OrderConflict(f"Idempotency-Key {key!r} is being used concurrently; try again")


def known_order(engine: Engine, order: Order) -> SubmitAnswer | None:
    """The answer for an order the read model already holds. Temporal refuses a second workflow with the same
    id only within the namespace's retention; the read model remembers for good."""
    with read_only(engine) as session:
        row = session.get(SalesOrder, order.order_no)
        if row is None:
            return None
        if row.content_hash != order.content_hash():
            raise OrderConflict(f"order {order.order_no} was already submitted with different content")
        return SubmitAnswer(order_no=row.order_no, workflow_id=row.workflow_id, status=row.status, created=False)


async def take_order(
    client: Client, engine: Engine, order: Order, task_queue: str, *, user: str, idempotency_key: str | None
) -> SubmitAnswer:
    if idempotency_key:
        await asyncio.to_thread(claim_idempotency_key, engine, user, idempotency_key, order)
    known = await asyncio.to_thread(known_order, engine, order)
    if known is not None:
        return known
    return await order_commands.submit(client, order, task_queue)
