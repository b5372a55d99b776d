"""Purchase requisitions raised by backorders and reorder points (open ones unless asked for all)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from models.tables import PurchaseRequisition, RequisitionState


def requisitions_view(session: Session, *, include_closed: bool = False) -> list[dict[str, Any]]:
    query = select(PurchaseRequisition).order_by(col(PurchaseRequisition.id))
    if not include_closed:
        query = query.where(PurchaseRequisition.state == RequisitionState.OPEN)
    return [
        {
            "id": r.id,
            "sku": r.sku,
            "warehouse": r.warehouse,
            "qty": r.qty,
            "reason": r.reason,
            "order_no": r.order_no,
            "state": r.state,
            "created_at": r.created_at.isoformat(),
        }  # fmt: skip
        for r in session.exec(query).all()
    ]
