"""Issuing invoices, in the caller's transaction: the next number of the entity's series for the year, the lines
(domain/billing.py's tax rule), and the ledger entry that makes the customer owe it — all or nothing.

An invoice is keyed on what it bills (`key`): issuing it again (a retried step) finds it and issues nothing, so no
number is spent twice and none is skipped: a number is taken only in the transaction that inserts its invoice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

import structlog
from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from core.config import Settings
from domain.billing import (
    ZERO,
    BillingError,
    InvoiceTiming,
    LineAmounts,
    due_date,
    invoice_number,
    invoice_timing,
    line_amounts,
    totals,
)
from models.sqltypes import MoneyCents
from models.status import NEVER_BILLED
from models.tables import (
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceSeries,
    LedgerEntry,
    Product,
    Reservation,
    ReservationState,
    SalesOrder,
    Shipment,
)
from services.billing.ledger import book

BASIS_POINTS = Decimal(10000)
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Billed:
    """One line of what an invoice bills: an order line (numbered from 1, as its reservations are) and how many."""

    line_no: int
    qty: int


@dataclass(frozen=True)
class InvoicePolicy:
    entity: str  # the legal entity whose series numbers the invoice
    tax_rates: Mapping[str, Decimal]  # tax class → rate
    zone: tzinfo = UTC  # the business's time zone: an invoice's year is the one it was issued in there
    timing: str = "dispatch/parcel"  # when invoices are issued, unless the channel or the customer says otherwise
    timing_by_channel: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings) -> InvoicePolicy:
        return cls(
            settings.legal_entity, dict(settings.tax_rates), settings.business_zone, settings.invoice_policy,
            dict(settings.invoice_policy_by_channel),
        )  # fmt: skip

    def timing_of(self, session: Session, order: SalesOrder) -> InvoiceTiming:
        """The order's: the one fixed when it was registered, else (older orders) as for a new one."""
        if order.invoice_policy:
            return InvoiceTiming.parse(order.invoice_policy)
        return self.timing_for(session, order.customer_id, order.channel)

    def timing_for(self, session: Session, customer_id: str, channel: str) -> InvoiceTiming:
        """A new order's: its customer's policy, else its channel's, else the business's. A customer's policy that
        does not read (the column is free text) is passed over, with a warning, rather than stopping the order."""
        customer = session.get(Customer, customer_id)
        own = customer.invoice_policy if customer is not None else None
        try:
            return invoice_timing(own, channel, dict(self.timing_by_channel), self.timing)
        except BillingError as exc:
            log.warning("customer invoice policy ignored", customer_id=customer_id, why=str(exc))
            return invoice_timing(None, channel, dict(self.timing_by_channel), self.timing)


def next_number(session: Session, entity: str, year: int) -> int:
    """Take the series' next number (creating the series at 1). The UPDATE holds the row until the caller's
    transaction ends: a concurrent issuer waits for it, then takes the number after."""
    table = InvoiceSeries.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    session.execute(insert.values(entity=entity, year=year, last=0).on_conflict_do_nothing())
    taken = session.execute(
        update(InvoiceSeries)
        .where(col(InvoiceSeries.entity) == entity, col(InvoiceSeries.year) == year)
        .values(last=col(InvoiceSeries.last) + 1)
        .returning(col(InvoiceSeries.last))
    ).scalar_one()
    return int(taken)


def issue_invoice(
    session: Session,
    *,
    key: str,
    order: SalesOrder,
    billed: Sequence[Billed],
    policy: InvoicePolicy,
    now: datetime,
    tracking_no: str | None = None,
) -> Invoice | None:
    """Issue the invoice for `billed` of `order` (None: `key` was issued before). Prices are the order's (tax
    included), rates by each product's tax class."""
    if session.exec(select(Invoice.invoice_no).where(Invoice.key == key)).first() is not None:
        return None
    lines = order.payload.get("lines", [])
    if not billed or any(not 1 <= b.line_no <= len(lines) for b in billed):
        raise BillingError(f"order {order.order_no} has lines 1..{len(lines)}: cannot bill {list(billed)}")
    skus = {str(lines[b.line_no - 1]["sku"]) for b in billed}
    products = {p.sku: p for p in session.exec(select(Product).where(col(Product.sku).in_(skus)))}
    amounts: list[tuple[str, LineAmounts]] = []
    for b in sorted(billed, key=lambda item: item.line_no):
        line = lines[b.line_no - 1]
        sku = str(line["sku"])
        product = products.get(sku)
        tax_class = product.tax_class if product else "standard"
        if tax_class not in policy.tax_rates:
            raise LookupError(f"{sku}: tax class {tax_class!r} has no rate (ORDERFLOW_TAX_RATES)")
        description = product.name if product else sku
        amounts.append(
            (description, line_amounts(sku, b.qty, Decimal(str(line["unit_price"])), policy.tax_rates[tax_class]))
        )
    sums = totals([a for _, a in amounts])
    customer = session.get(Customer, order.customer_id)
    terms = customer.payment_terms_days if customer is not None else 0
    year = now.astimezone(policy.zone).year
    seq = next_number(session, policy.entity, year)
    number = invoice_number(policy.entity, year, seq)
    invoice = Invoice(
        invoice_no=number,
        key=key,
        kind="invoice",
        entity=policy.entity,
        year=year,
        seq=seq,
        order_no=order.order_no,
        customer_id=order.customer_id,
        tracking_no=tracking_no,
        currency=order.currency,
        net=sums.net,
        tax=sums.tax,
        total=sums.gross,
        issued_at=now,
        due_at=due_date(now, terms),
    )
    session.add(invoice)
    for position, (description, a) in enumerate(amounts):
        session.add(
            InvoiceLine(
                invoice_no=number, position=position, sku=a.sku, description=description[:200], qty=a.qty,
                unit_price=a.unit_price, tax_rate_bp=int(a.tax_rate * BASIS_POINTS), net=a.net, tax=a.tax,
                gross=a.gross,
            )
        )  # fmt: skip
    book(
        session, key=f"invoice:{number}", customer_id=order.customer_id, kind="invoice", amount=sums.gross,
        currency=order.currency, at=now, order_no=order.order_no, invoice_no=number, reference=number,
    )  # fmt: skip
    _apply_unapplied(session, order, number, sums.gross, now)
    return invoice


def _apply_unapplied(session: Session, order: SalesOrder, invoice_no: str, total: Decimal, now: datetime) -> None:
    """Money of the order's already in hand (its prepayment, an overpayment) settles the new invoice: a pair of
    entries moves it from unapplied onto the invoice (the balance does not move; the invoice shows paid)."""
    held = session.exec(
        select(func.sum(col(LedgerEntry.amount), type_=MoneyCents())).where(
            LedgerEntry.order_no == order.order_no, LedgerEntry.kind == "payment", col(LedgerEntry.invoice_no).is_(None)
        )
    ).one()
    applied = min(-(held or ZERO), total)
    if applied <= 0:
        return
    for key, amount, settles in (
        (f"apply:{invoice_no}:from", applied, None),
        (f"apply:{invoice_no}:to", -applied, invoice_no),
    ):
        book(
            session, key=key, customer_id=order.customer_id, kind="payment", amount=amount, currency=order.currency,
            at=now, order_no=order.order_no, invoice_no=settles, reference=f"applied to {invoice_no}",
        )  # fmt: skip


def backfill(session: Session, policy: InvoicePolicy, now: datetime) -> list[Invoice]:
    """Invoices for the parcels that left before invoicing existed (migration 0012): each dispatched parcel of a
    billable order without its invoice gets one now — its consumed stock's lines, today's number and date, keyed
    as record_dispatch keys them, so running this twice issues nothing twice. Oldest parcel first."""
    billed = select(Invoice.key)
    rows = session.exec(
        select(Shipment, SalesOrder)
        .join(SalesOrder, col(SalesOrder.order_no) == col(Shipment.order_no))
        .where(col(SalesOrder.status).not_in([s.value for s in NEVER_BILLED]))
        .order_by(col(Shipment.dispatched_at), col(Shipment.id))
    ).all()
    done = set(session.exec(billed))
    issued: list[Invoice] = []
    for shipment, order in rows:
        shipped = session.exec(
            select(Reservation.line_no, func.sum(col(Reservation.qty)))
            .where(
                Reservation.order_no == order.order_no,
                Reservation.warehouse == shipment.warehouse,
                Reservation.state == ReservationState.CONSUMED,
            )
            .group_by(col(Reservation.line_no))
        ).all()
        if not shipped or parcel_key(order.order_no, shipment.carrier, shipment.tracking_no) in done:
            continue
        invoice = issue_invoice(
            session,
            key=parcel_key(order.order_no, shipment.carrier, shipment.tracking_no),
            order=order,
            billed=[Billed(line_no, int(qty)) for line_no, qty in sorted(shipped)],
            policy=policy,
            now=now,
            tracking_no=shipment.tracking_no,
        )
        if invoice is not None:
            issued.append(invoice)
    return issued


def parcel_key(order_no: str, carrier: str, tracking_no: str) -> str:
    """What a parcel's invoice is keyed on (billing triggers, backfill)."""
    return f"parcel:{order_no}:{carrier}:{tracking_no}"


def order_key(order_no: str) -> str:
    """What the invoice of a whole order (an `…/order` invoice policy) is keyed on."""
    return f"order:{order_no}"
