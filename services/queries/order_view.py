"""The order view (docs/contract.md): status, lines, approvals, allocations, shipments with tracking, timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from domain.billing import Settled, settlement
from models.tables import (
    ApprovalRecord,
    Invoice,
    LedgerEntry,
    OrderEvent,
    Refund,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
    StockLot,
    TrackingEvent,
)
from services.errors import OrderNotFound


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def order_view(session: Session, order_no: str) -> dict[str, Any]:
    order = session.get(SalesOrder, order_no)
    if order is None:
        raise OrderNotFound(f"unknown order {order_no}")
    events = session.exec(select(OrderEvent).where(OrderEvent.order_no == order_no).order_by(col(OrderEvent.seq))).all()
    approvals = session.exec(
        select(ApprovalRecord).where(ApprovalRecord.order_no == order_no).order_by(col(ApprovalRecord.id))
    ).all()
    reservations = session.exec(
        select(Reservation, StockLot)
        .join(StockLot, col(StockLot.id) == col(Reservation.lot_id))
        .where(Reservation.order_no == order_no, Reservation.state != ReservationState.RELEASED)
        .order_by(col(Reservation.line_no), col(Reservation.id))
    ).all()
    shipments = session.exec(select(Shipment).where(Shipment.order_no == order_no).order_by(col(Shipment.id))).all()
    invoices = session.exec(
        select(Invoice).where(Invoice.order_no == order_no).order_by(col(Invoice.issued_at), col(Invoice.seq))
    ).all()
    entries = session.exec(
        select(LedgerEntry).where(LedgerEntry.order_no == order_no).order_by(col(LedgerEntry.at), col(LedgerEntry.id))
    ).all()
    return {
        "order_no": order.order_no,
        "status": order.status,
        "customer_id": order.customer_id,
        "channel": order.channel,
        "sales_rep": order.sales_rep,
        "currency": order.currency,
        "total": str(order.total),
        "paid": order.paid,
        "settlement": _settlement(order.total, entries),
        "reasons": order.reasons,
        "lines": [
            {"line": i, "sku": line["sku"], "qty": line["qty"], "unit_price": line["unit_price"]}
            for i, line in enumerate(order.payload.get("lines", []), start=1)
        ],
        "approvals": [
            {
                "level": a.level,
                "role": a.role,
                "by": a.by,
                "decision": a.decision,
                "at": _iso(a.at),
                "comment": a.comment,
                **({} if a.accepted else {"refused": a.refusal_reason}),
                **({"on_behalf_of": a.on_behalf_of} if a.on_behalf_of else {}),
            }
            for a in approvals
        ],
        "allocations": [
            {
                "line": r.line_no,
                "sku": r.sku,
                "warehouse": r.warehouse,
                "lot": lot.lot,
                "bin": lot.bin,
                "qty": r.qty,
                "state": r.state,
            }
            for r, lot in reservations
        ],
        "shipments": [_shipment_view(session, s) for s in shipments],
        "invoices": [
            {
                "invoice_no": i.invoice_no,
                "kind": i.kind,
                "tracking_no": i.tracking_no,
                "net": str(i.net),
                "tax": str(i.tax),
                "total": str(i.total),
                "issued_at": _iso(i.issued_at),
                "due_at": _iso(i.due_at),
            }
            for i in invoices
        ],
        # The order's entries in the receivables ledger: its invoices, payments, refunds (amount > 0: owed to us).
        "ledger": [
            {
                "kind": e.kind,
                "amount": str(e.amount),
                "reference": e.reference,
                "invoice_no": e.invoice_no,
                "at": _iso(e.at),
            }
            for e in entries
        ],  # fmt: skip
        "refund": _refund_view(session.get(Refund, order_no)),
        "timeline": [{"status": e.status, "at": _iso(e.at), "detail": e.detail} for e in events],
    }


def _refund_view(refund: Refund | None) -> dict[str, Any] | None:
    if refund is None:
        return None
    return {
        "state": refund.state,
        "amount": str(refund.amount),
        "currency": refund.currency,
        "method": refund.method,
        "reference": refund.reference,
        "reason": refund.reason,
        "decided_by": refund.decided_by,
        "why": refund.why,
        "made_by": refund.made_by,
        "made_at": _iso(refund.made_at),
    }


def _settlement(total: Decimal, entries: Sequence[LedgerEntry]) -> str:
    def of(*kinds: str) -> Decimal:
        return sum((entry.amount for entry in entries if entry.kind in kinds), Decimal("0.00"))

    money = Settled(
        invoiced=of("invoice"),
        paid=-of("payment"),
        credited=-of("credit_note"),
        written_off=-of("write_off"),
        refunded=of("refund"),
    )
    return settlement(total, money)


def _shipment_view(session: Session, shipment: Shipment) -> dict[str, Any]:
    events = session.exec(
        select(TrackingEvent)
        .where(TrackingEvent.carrier == shipment.carrier, TrackingEvent.tracking_no == shipment.tracking_no)
        .order_by(col(TrackingEvent.at), col(TrackingEvent.id))
    ).all()
    return {
        "warehouse": shipment.warehouse,
        "carrier": shipment.carrier,
        "tracking_no": shipment.tracking_no,
        "status": shipment.status,
        "signed_by": shipment.signed_by,
        "signed_at": _iso(shipment.signed_at),
        "events": [
            {"status": e.status, "at": _iso(e.at), "location": e.location, "description": e.description} for e in events
        ],
    }
