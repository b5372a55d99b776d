"""What billing does when an order moves, in the transaction that records the move: issue the invoices its policy
(InvoicePolicy.timing_of) asks for at that point, collect cash on delivery, credit what never arrived.

- approval (`approval/order`): the whole order, when it is approved;
- dispatch (`dispatch/parcel`, the default): each parcel as it leaves, its lines what it carries; `dispatch/order`:
  the whole order when its last parcel leaves;
- delivery (`delivery/parcel`): each parcel when it is signed for; `delivery/order`: once every parcel has ended,
  for what the delivered ones carried.
A cash-on-delivery parcel signed for is a payment of its goods (the carrier collected them; reference
`COD-<carrier>-<tracking_no>`, the same one a remittance file names, so either books it once). A parcel refused at
the door, returned or given up on gets a credit note for what its invoice billed of it.

Everything is keyed (invoice keys, the payment's reference, credit note keys): a retried step books nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.billing import CENTS, ZERO
from models.order import PaymentMethod
from models.status import TrackingStatus
from models.tables import Invoice, InvoiceLine, Reservation, ReservationState, SalesOrder, Shipment
from services.billing.credit_notes import issue_credit_note
from services.billing.invoices import Billed, InvoicePolicy, issue_invoice, order_key, parcel_key
from services.billing.ledger import book
from services.billing.payments import lock_order, open_invoices, payment_parts, record_payment, short_of
from services.errors import CommandError

# A parcel in one of these will not reach the customer: what it billed is credited.
UNDELIVERED = frozenset({TrackingStatus.REFUSED, TrackingStatus.RETURNED, TrackingStatus.EXPIRED})


def on_approved(session: Session, order: SalesOrder, policy: InvoicePolicy, now: datetime) -> Invoice | None:
    if str(policy.timing_of(session, order)) != "approval/order":
        return None
    lines = order.payload.get("lines", [])
    billed = [Billed(n, int(line["qty"])) for n, line in enumerate(lines, start=1)]
    return issue_invoice(session, key=order_key(order.order_no), order=order, billed=billed, policy=policy, now=now)


def on_dispatched(
    session: Session,
    order: SalesOrder,
    shipped: Sequence[Billed],
    carrier: str,
    tracking_no: str,
    policy: InvoicePolicy,
    now: datetime,
) -> Invoice | None:
    """A parcel left with `shipped` (the stock it consumed)."""
    timing = policy.timing_of(session, order)
    if timing.point != "dispatch" or not shipped:
        return None
    if timing.per == "parcel":
        key = parcel_key(order.order_no, carrier, tracking_no)
        return issue_invoice(
            session, key=key, order=order, billed=shipped, policy=policy, now=now, tracking_no=tracking_no
        )
    if _still_locked(session, order.order_no):
        return None  # other warehouses' parcels are still to leave
    return issue_invoice(
        session, key=order_key(order.order_no), order=order, billed=_consumed(session, order.order_no), policy=policy,
        now=now,
    )  # fmt: skip


def on_parcel_end(
    session: Session, shipment: Shipment, status: TrackingStatus, policy: InvoicePolicy, now: datetime
) -> None:
    """The parcel reached `status` (delivered, or one of UNDELIVERED) — the shipment row is locked by the caller."""
    order = session.get(SalesOrder, shipment.order_no)
    if order is None:
        return
    if status == TrackingStatus.DELIVERED:
        _delivered(session, order, shipment, policy, now)
    elif status in UNDELIVERED:
        _undelivered(session, order, shipment, status, policy, now)
    if str(policy.timing_of(session, order)) == "delivery/order":
        _bill_what_arrived(session, order, shipment, status, policy, now)


def on_stopped(session: Session, order: SalesOrder, policy: InvoicePolicy, now: datetime) -> None:
    """The order ended cancelled, rejected or failed. If nothing of it left a warehouse, whatever it was billed
    (an `approval/order` invoice) is credited in full, paid or not: it owes nothing for goods it never got (a
    prepayment then stands as money to refund). Parcels that did leave are credited as they fail (on_parcel_end)."""
    credit_unshipped(session, order, now, policy.zone)


def credit_unshipped(session: Session, order: SalesOrder, now: datetime, zone: tzinfo) -> None:
    """Credit in full the invoices of an order nothing of which was shipped (once each, whoever asks: the stop's
    record, or a refund opened for a run that stopped before this was done at the stop)."""
    if session.exec(select(Shipment.id).where(Shipment.order_no == order.order_no)).first() is not None:
        return
    for invoice in session.exec(
        select(Invoice).where(Invoice.order_no == order.order_no, Invoice.kind == "invoice").order_by(col(Invoice.seq))
    ).all():
        try:
            issue_credit_note(
                session, key=f"credit:stopped:{invoice.invoice_no}", invoice_no=invoice.invoice_no,
                reason=f"order {order.order_no} {order.status.lower()} before anything was shipped", now=now,
                zone=zone,
            )  # fmt: skip
        except CommandError:  # credited in full already
            pass


def cod_reference(carrier: str, tracking_no: str) -> str:
    return f"COD-{carrier}-{tracking_no}"


def collect_cod(
    session: Session, order: SalesOrder, shipment: Shipment, amount: Decimal, *, by: str, now: datetime
) -> Decimal:
    """Book the carrier's collection of a COD parcel (`amount`) as the order's payment; money for an invoice not
    issued yet is held unapplied and settles it when it is. Never more than the order is still short of: a platform
    that said the order is paid (payments.paid_in_full) booked that money already. Returns the amount booked now
    (0: booked before, or nothing short)."""
    reference = cod_reference(shipment.carrier, shipment.tracking_no)
    lock_order(session, order.order_no)
    earlier = payment_parts(session, reference)
    if earlier:  # booked before (at delivery, or by a remittance line): never again, whatever is open now
        booked_before = -sum((entry.amount for entry in earlier), ZERO)
        if booked_before != amount:
            raise CommandError(f"the collection {reference} was booked as {booked_before}, not {amount}")
        return ZERO
    amount = min(amount, short_of(session, order))
    if amount <= 0:
        return ZERO
    if open_invoices(session, order.order_no):
        record_payment(session, order.order_no, reference=reference, amount=amount, by=by, at=now)
        return amount
    newly = book(
        session, key=f"payment:{reference}:unapplied", customer_id=order.customer_id, kind="payment", amount=-amount,
        currency=order.currency, at=now, order_no=order.order_no, reference=reference, by=by,
    )  # fmt: skip
    return amount if newly else ZERO


def parcel_value(session: Session, order: SalesOrder, warehouse: str) -> Decimal:
    """What a parcel's goods were sold for (its consumed stock at the order's prices, tax included)."""
    lines = order.payload.get("lines", [])
    total = ZERO
    for billed in _consumed(session, order.order_no, warehouse):
        total += Decimal(str(lines[billed.line_no - 1]["unit_price"])) * billed.qty
    return total.quantize(CENTS)


def _delivered(session: Session, order: SalesOrder, shipment: Shipment, policy: InvoicePolicy, now: datetime) -> None:
    timing = policy.timing_of(session, order)
    if timing.point == "delivery":
        if timing.per == "parcel":
            billed = _consumed(session, order.order_no, shipment.warehouse)
            key = parcel_key(order.order_no, shipment.carrier, shipment.tracking_no)
            if billed:
                issue_invoice(session, key=key, order=order, billed=billed, policy=policy, now=now,
                              tracking_no=shipment.tracking_no)  # fmt: skip
    if order.payment_method == PaymentMethod.COD.value:
        value = parcel_value(session, order, shipment.warehouse)
        if value > 0:
            try:
                collect_cod(session, order, shipment, value, by=f"carrier:{shipment.carrier}", now=now)
            except CommandError:  # a remittance line booked this collection already, for another amount: it stands
                pass


def _undelivered(
    session: Session,
    order: SalesOrder,
    shipment: Shipment,
    status: TrackingStatus,
    policy: InvoicePolicy,
    now: datetime,
) -> None:
    """Credit what the parcel's invoice billed of it: the parcel's own invoice in full, or — the order billed as a
    whole — the order invoice's lines this parcel carried."""
    reason = f"parcel {shipment.carrier} {shipment.tracking_no} {status.value.lower().replace('_', ' ')}"
    key = f"credit:{parcel_key(order.order_no, shipment.carrier, shipment.tracking_no)}"
    own = session.exec(
        select(Invoice).where(Invoice.key == parcel_key(order.order_no, shipment.carrier, shipment.tracking_no))
    ).first()
    if own is not None:
        issue_credit_note(session, key=key, invoice_no=own.invoice_no, reason=reason, now=now, zone=policy.zone)
        return
    whole = session.exec(select(Invoice).where(Invoice.key == order_key(order.order_no))).first()
    if whole is None:
        return  # nothing billed yet: nothing to credit (an undelivered order is never billed: NEVER_BILLED)
    carried = {order.payload["lines"][b.line_no - 1]["sku"]: b.qty for b in _consumed(
        session, order.order_no, shipment.warehouse
    )}  # fmt: skip
    positions: dict[int, int] = {}
    for line in session.exec(select(InvoiceLine).where(InvoiceLine.invoice_no == whole.invoice_no)):
        take = min(carried.get(line.sku, 0), line.qty)
        if take:
            positions[line.position] = take
            carried[line.sku] -= take
    if positions:
        issue_credit_note(
            session, key=key, invoice_no=whole.invoice_no, reason=reason, now=now, lines=positions, zone=policy.zone
        )


def _consumed(session: Session, order_no: str, warehouse: str | None = None) -> list[Billed]:
    """The order's shipped stock by order line (of one warehouse's parcel, or all)."""
    query = (
        select(Reservation.line_no, func.sum(col(Reservation.qty)))
        .where(Reservation.order_no == order_no, Reservation.state == ReservationState.CONSUMED)
        .group_by(col(Reservation.line_no))
    )
    if warehouse is not None:
        query = query.where(Reservation.warehouse == warehouse)
    return [Billed(int(line_no), int(qty)) for line_no, qty in sorted(session.exec(query).all())]


def _still_locked(session: Session, order_no: str) -> bool:
    return (
        session.exec(
            select(Reservation.id).where(Reservation.order_no == order_no, Reservation.state == ReservationState.LOCKED)
        ).first()
        is not None
    )


def _bill_what_arrived(
    session: Session, order: SalesOrder, this: Shipment, status: TrackingStatus, policy: InvoicePolicy, now: datetime
) -> None:
    """`delivery/order`: once every parcel has ended (this one just did, in the caller's transaction) and none is
    still to leave, one invoice for what the delivered parcels carried (none arrived: nothing to bill)."""
    if _still_locked(session, order.order_no):
        return
    ended = {shipment_id: TrackingStatus(state) for shipment_id, state in session.exec(
        select(Shipment.id, Shipment.status).where(Shipment.order_no == order.order_no)
    ).all()}  # fmt: skip
    ended[this.id] = status
    if any(state != TrackingStatus.DELIVERED and state not in UNDELIVERED for state in ended.values()):
        return  # a parcel is still on its way
    arrived = session.exec(
        select(Shipment.warehouse).where(Shipment.order_no == order.order_no, col(Shipment.id).in_(
            [shipment_id for shipment_id, state in ended.items() if state == TrackingStatus.DELIVERED]
        ))
    ).all()  # fmt: skip
    billed: dict[int, int] = {}
    for warehouse in set(arrived):
        for line in _consumed(session, order.order_no, warehouse):
            billed[line.line_no] = billed.get(line.line_no, 0) + line.qty
    if billed:
        lines = [Billed(n, q) for n, q in sorted(billed.items())]
        issue_invoice(session, key=order_key(order.order_no), order=order, billed=lines, policy=policy, now=now)
