"""Purchase requisitions: asking purchasing for stock, once per (sku, warehouse) while one is open.

Used by allocation (a backorder's shortfall, a reorder point crossed) and by the automations' requisition action.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from domain.replenishment import Need
from models.status import Role
from models.tables import Notification, PurchaseRequisition, User


def request_stock(
    session: Session, needs: Sequence[Need], *, order_no: str | None, lock: bool, announce: bool = True
) -> list[PurchaseRequisition]:
    """Open a purchase requisition per need, once: an open one for the same (sku, warehouse) is raised to the
    larger quantity instead of duplicated. Returns the new ones; purchasing (ops) hears about each (`announce`)
    in the inbox. `lock`: Postgres, where two shortfalls must not overwrite each other's quantity."""
    opened = []
    for need in needs:
        open_key = f"{need.sku}:{need.warehouse}"
        query = select(PurchaseRequisition).where(PurchaseRequisition.open_key == open_key)
        if lock:
            query = query.with_for_update()
        existing = session.exec(query).first()
        if existing is not None:
            if need.qty > existing.qty:
                existing.qty = need.qty
                session.add(existing)
            continue
        requisition = PurchaseRequisition(
            open_key=open_key,
            sku=need.sku,
            warehouse=need.warehouse,
            qty=need.qty,
            reason=need.reason,
            order_no=order_no,
        )
        session.add(requisition)
        session.flush()
        opened.append(requisition)
        if not announce:
            continue
        why = need.reason.replace("_", " ") + (f", order {order_no}" if order_no else "")
        body = f"Purchase requisition #{requisition.id}: {need.qty} x {need.sku} for {need.warehouse} ({why})"
        for name in session.exec(select(User.name).where(User.role == Role.OPS.value)).all():
            session.add(
                Notification(
                    key=f"requisition:{requisition.id}:{name}",
                    order_no=order_no or "",
                    kind="replenishment",
                    channel="internal",
                    recipient=name,
                    body=body,
                )
            )
    return opened
