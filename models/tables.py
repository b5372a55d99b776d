"""SQLModel tables: master data, stock ledger, and the order read model + audit trail."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.sqltypes import MoneyCents, UTCDateTime
from models.status import RefundState


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- master data -------------------------------------------------------------------------------


class Customer(SQLModel, table=True):
    __tablename__ = "customers"
    customer_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    region: str = Field(max_length=64)
    email: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=64)
    credit_limit: Decimal = Field(sa_type=MoneyCents)
    payment_terms_days: int = 30  # an invoice is due this many days after it is issued
    # When this customer is invoiced (`point/per`, domain/billing.py InvoiceTiming); None: the channel's or default.
    invoice_policy: str | None = Field(default=None, max_length=32)
    # True until the customer's first order has been accepted (first orders of new customers prepay).
    first_order: bool = True


class Product(SQLModel, table=True):
    __tablename__ = "products"
    sku: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    unit_price: Decimal = Field(sa_type=MoneyCents)  # the price list
    active: bool = True
    tax_class: str = Field(default="standard", max_length=16)  # its VAT rate: ORDERFLOW_TAX_RATES
    reorder_level: int = 50
    # The product line the cockpit groups sales and stock by (data, kept with the product; the KPIs read it live).
    product_line: str = Field(default="general", max_length=64, sa_column_kwargs={"server_default": "general"})
    unit_cost: Decimal | None = Field(default=None, sa_type=MoneyCents)  # what a unit costs us (inventory turnover)


class Warehouse(SQLModel, table=True):
    __tablename__ = "warehouses"
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    region: str = Field(max_length=64)


class RegionDistance(SQLModel, table=True):
    """How far a warehouse region is from a ship-to region (data, not code)."""

    __tablename__ = "region_distances"
    from_region: str = Field(primary_key=True, max_length=64)
    to_region: str = Field(primary_key=True, max_length=64)
    distance: int


class StockLot(SQLModel, table=True):
    __tablename__ = "stock_lots"
    __table_args__ = (UniqueConstraint("warehouse", "sku", "lot"),)
    id: int | None = Field(default=None, primary_key=True)
    warehouse: str = Field(foreign_key="warehouses.code", index=True, max_length=32)
    sku: str = Field(foreign_key="products.sku", index=True, max_length=64)
    bin: str = Field(max_length=64)
    lot: str = Field(max_length=64)
    received_at: datetime = Field(sa_type=UTCDateTime)
    on_hand: int = Field(ge=0)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # FEFO; expired lots never ship


class ReservationState(StrEnum):
    LOCKED = "locked"
    RELEASED = "released"
    CONSUMED = "consumed"


class Reservation(SQLModel, table=True):
    """Stock locked for an order line in one lot. `key` makes a retried lock find its own row."""

    __tablename__ = "reservations"
    # The stock KPIs' movements since a day (services/queries/kpis.py): locks by when made, releases and dispatches
    # by when they happened.
    __table_args__ = (
        Index("ix_reservations_created_at", "created_at"),
        Index("ix_reservations_state_updated_at", "state", "updated_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    order_no: str = Field(index=True, max_length=64)
    line_no: int
    sku: str = Field(index=True, max_length=64)
    warehouse: str = Field(max_length=32)
    lot_id: int = Field(foreign_key="stock_lots.id", index=True)
    qty: int = Field(gt=0)
    state: str = Field(default=ReservationState.LOCKED, index=True, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RequisitionState(StrEnum):
    OPEN = "open"
    RECEIVED = "received"
    CANCELLED = "cancelled"


class PurchaseRequisition(SQLModel, table=True):
    """A replenishment request to purchasing. At most one open per (sku, warehouse): retries and repeated
    shortfalls find it instead of asking twice (`open_key` is unique and cleared when it closes)."""

    __tablename__ = "purchase_requisitions"
    id: int | None = Field(default=None, primary_key=True)
    open_key: str | None = Field(default=None, unique=True, max_length=120)
    sku: str = Field(foreign_key="products.sku", index=True, max_length=64)
    warehouse: str = Field(foreign_key="warehouses.code", max_length=32)
    qty: int = Field(gt=0)
    reason: str = Field(max_length=32)  # backorder | reorder_point
    order_no: str | None = Field(default=None, max_length=64)  # the order whose shortfall raised it
    state: str = Field(default=RequisitionState.OPEN, index=True, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StockReceipt(SQLModel, table=True):
    """Every goods receipt booked; `receipt_no` (the caller's idempotency key) makes a retry book nothing."""

    __tablename__ = "stock_receipts"
    __table_args__ = (Index("ix_stock_receipts_at", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    receipt_no: str | None = Field(default=None, unique=True, max_length=100)
    sku: str = Field(foreign_key="products.sku", index=True, max_length=64)
    warehouse: str = Field(foreign_key="warehouses.code", max_length=32)
    lot_id: int = Field(foreign_key="stock_lots.id")
    lot: str = Field(max_length=64)
    qty: int = Field(gt=0)
    received_by: str = Field(default="", max_length=64)
    requisitions_closed: list[int] = Field(default_factory=list, sa_type=JSON)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    """A member of staff: an API token (integrations, scripts) and, for the console, a password. Only hashes."""

    __tablename__ = "users"
    name: str = Field(primary_key=True, max_length=64)
    role: str = Field(max_length=32)
    token_hash: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    password_hash: str | None = Field(default=None, max_length=200)  # argon2id; None: cannot sign in
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    disabled: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})
    # How staff notices reach them besides the console's inbox (each needs the address on file).
    notify_email: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})
    notify_sms: bool = Field(default=False, sa_column_kwargs={"server_default": "0"})


class UserWarehouse(SQLModel, table=True):
    """The warehouses a member of the warehouse staff works in: their pick lists are theirs to pick and dispatch."""

    __tablename__ = "user_warehouses"
    user_name: str = Field(primary_key=True, max_length=64)
    warehouse: str = Field(primary_key=True, foreign_key="warehouses.code", max_length=32)


class Substitution(SQLModel, table=True):
    """An approver out of office names a substitute for a span of days: while it stands, the substitute sees the
    approver's to-dos and decides them with the approver's role, audited "on behalf of" (services/substitutes.py).
    Rows are kept when withdrawn (`withdrawn_at`), as the record of who could decide for whom."""

    __tablename__ = "substitutions"
    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(foreign_key="users.name", index=True, max_length=64)
    substitute: str = Field(foreign_key="users.name", index=True, max_length=64)
    starts_at: datetime = Field(sa_type=UTCDateTime)  # the first day's start in the business's time zone
    ends_at: datetime = Field(sa_type=UTCDateTime)  # the day after the last day, same
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A console sign-in. The cookie holds a random token; only its hash is stored. The CSRF token is per session."""

    __tablename__ = "web_sessions"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(index=True, max_length=64)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class LoginFailure(SQLModel, table=True):
    """A failed console sign-in: too many for one user name in a window and the next attempts are refused."""

    __tablename__ = "login_failures"
    id: int | None = Field(default=None, primary_key=True)
    user_name: str = Field(index=True, max_length=64)
    address: str = Field(default="", max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Refund(SQLModel, table=True):
    """The refund of a paid order that was cancelled, rejected or failed: requested by its RefundPayment workflow
    (or, for runs older than it, recorded by finance by hand), made through the payment provider. One per order."""

    __tablename__ = "refunds"
    order_no: str = Field(primary_key=True, max_length=64)
    amount: Decimal = Field(sa_type=MoneyCents)
    currency: str = Field(max_length=3)
    state: str = Field(default=RefundState.MADE, index=True, max_length=24)
    method: str = Field(default="manual", max_length=16)  # provider | manual
    reason: str = Field(default="", max_length=500)  # why the order stopped
    requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decided_by: str | None = Field(default=None, max_length=64)  # the finance approver (over the approval amount)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    why: str = Field(default="", max_length=500)  # a decline's comment, the provider's refusal
    reference: str = Field(default="", max_length=200)  # the provider's refund id or the bank transfer's reference
    made_by: str | None = Field(default=None, max_length=64)
    made_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApprovalLink(SQLModel, table=True):
    """An approve-from-the-mail link: one approver, one order, one level. The token is never stored (it is derived
    from the secret and the notice's key when the mail is sent); its hash finds the link. Used once, then spent;
    void once the level is decided or the order awaits another level or role."""

    __tablename__ = "approval_links"
    token_hash: str = Field(primary_key=True, max_length=64)
    order_no: str = Field(index=True, max_length=64)
    level: int
    role: str = Field(max_length=32)  # the level's role (finance, director)
    approver: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    voided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- the order read model and audit trail -------------------------------------------------------


class SalesOrder(SQLModel, table=True):
    __tablename__ = "orders"
    order_no: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(max_length=100)
    customer_id: str = Field(index=True, max_length=64)
    channel: str = Field(max_length=64)
    sales_rep: str = Field(max_length=64)
    order_type: str = Field(max_length=16)
    payment_method: str = Field(max_length=16)
    currency: str = Field(max_length=3)
    total: Decimal = Field(sa_type=MoneyCents)
    status: str = Field(index=True, max_length=32)
    paid: bool = False
    payload: dict[str, Any] = Field(sa_type=JSON)  # the canonical order as submitted
    content_hash: str = Field(max_length=64)
    reasons: list[str] = Field(default_factory=list, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # While the order waits for an approval level: whose decision, since when, until when (the approvers' to-do).
    awaiting_role: str | None = Field(default=None, index=True, max_length=32)
    awaiting_level: int | None = None
    awaiting_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    awaiting_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    awaiting_why: list[str] | None = Field(default=None, sa_type=JSON)
    # Marks people and automations set (rules/automation.py SetField); each change is an automation event.
    tags: list[str] = Field(default_factory=list, sa_type=JSON, sa_column_kwargs={"server_default": "[]"})
    priority: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    assignee: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    # The invoice policy it is billed by (`point/per`), fixed when it is registered: a policy changed later applies
    # to later orders, never half to one in flight. None: registered before it was kept (read live).
    invoice_policy: str | None = Field(default=None, max_length=32)
    # By when it is promised to leave the warehouse (registered + ORDERFLOW_DISPATCH_PROMISE, fixed at intake like
    # the invoice policy); None: registered before promises were kept (the KPIs then count it as not promised).
    dispatch_by: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrderLineRow(SQLModel, table=True):
    """An order's lines as registered (the payload's, queryable): what the sales and fill-rate KPIs count.
    `short_first` is what the first allocation attempt could not find of the line (0: all of it was there;
    None: allocation has not been tried), written by that attempt."""

    __tablename__ = "order_lines"
    order_no: str = Field(primary_key=True, max_length=64)
    line_no: int = Field(primary_key=True)
    sku: str = Field(index=True, max_length=64)
    qty: int
    unit_price: Decimal = Field(sa_type=MoneyCents)
    amount: Decimal = Field(sa_type=MoneyCents)  # qty × unit_price, tax included as the order states it
    short_first: int | None = None


class OrderFacts(SQLModel, table=True):
    """One row per order, derived from its order row, events, lines and shipments by services/order_facts.py in
    the transaction of every status change: the cockpit's KPIs are aggregates over it (docs/kpis.md). Being
    recomputed from the sources each time, it is exact whatever order the news arrives in, and can be rebuilt."""

    __tablename__ = "order_facts"
    order_no: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(sa_type=UTCDateTime, index=True)
    received_day: date = Field(index=True)  # in the business's time zone
    channel: str = Field(max_length=64)
    region: str = Field(default="", max_length=64)  # the ship-to region
    sales_rep: str = Field(index=True, max_length=64)
    customer_id: str = Field(max_length=64)
    currency: str = Field(max_length=3)
    total: Decimal = Field(sa_type=MoneyCents)
    status: str = Field(index=True, max_length=32)
    status_since: datetime = Field(sa_type=UTCDateTime)  # when it entered its current status
    lines: int
    units: int
    units_shipped: int = 0
    lines_short_first: int | None = None  # lines the first allocation attempt could not fill (None: not tried)
    units_short_first: int | None = None
    backordered: bool = False  # was BACKORDERED at some point
    returned: bool = False  # a parcel of it was refused, returned or given up on
    dispatch_by: datetime | None = Field(default=None, sa_type=UTCDateTime)
    approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatched_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, index=True
    )  # DISPATCHED: its last parcel left
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)  # a terminal status reached
    cycle_seconds: float | None = None  # received → COMPLETED
    approval_wait_seconds: float | None = None  # in CREDIT_HOLD and AWAITING_APPROVAL, all visits
    approval_ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)  # the last wait ended


class OrderStageTime(SQLModel, table=True):
    """How long an order spent in one status (all its visits), and when it last left it (None: it is there now or
    the status is terminal). Derived with OrderFacts."""

    __tablename__ = "order_stage_times"
    # By stage for a chart; all stages by when they were left (with the seconds: the dwell card reads the index only).
    __table_args__ = (
        Index("ix_order_stage_times_left", "stage", "left_at"),
        Index("ix_order_stage_times_left_seconds", "left_at", "seconds"),
    )
    order_no: str = Field(primary_key=True, max_length=64)
    stage: str = Field(primary_key=True, max_length=32)
    seconds: float
    entered_at: datetime = Field(sa_type=UTCDateTime)  # its first visit
    left_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Dashboard(SQLModel, table=True):
    """A cockpit a member of staff composed from the KPI catalogue (services/dashboards.py checks `definition`):
    theirs alone, or shared with everyone of `shared_role`."""

    __tablename__ = "dashboards"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    owner: str = Field(index=True, max_length=64)
    shared_role: str | None = Field(default=None, index=True, max_length=32)
    definition: dict[str, Any] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OrderEvent(SQLModel, table=True):
    """One row per status transition; `seq` is the workflow's transition counter (idempotency)."""

    __tablename__ = "order_events"
    __table_args__ = (UniqueConstraint("order_no", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(index=True, max_length=64)
    seq: int
    status: str = Field(max_length=32)
    at: datetime = Field(sa_type=UTCDateTime)
    detail: str = Field(default="", max_length=2000)


class ApprovalRecord(SQLModel, table=True):
    """Audit trail of every decision: who, role, when, comment; refused attempts too, with why."""

    __tablename__ = "approvals"
    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, unique=True, max_length=200)
    order_no: str = Field(index=True, max_length=64)
    level: int
    role: str = Field(max_length=32)
    by: str = Field(max_length=64)
    decision: str = Field(max_length=16)
    at: datetime = Field(sa_type=UTCDateTime)
    comment: str = Field(default="", max_length=2000)
    accepted: bool = True
    refusal_reason: str = Field(default="", max_length=500)
    on_behalf_of: str | None = Field(default=None, max_length=64)  # a substitute decided for this absent approver


class PickList(SQLModel, table=True):
    __tablename__ = "pick_lists"
    __table_args__ = (UniqueConstraint("order_no", "warehouse"),)
    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(index=True, max_length=64)
    warehouse: str = Field(max_length=32)
    lines: list[dict[str, Any]] = Field(sa_type=JSON)
    state: str = Field(default="issued", max_length=16)  # issued | voided | shipped
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    picked_by: str | None = Field(default=None, max_length=64)  # the goods are on the packing bench
    picked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Shipment(SQLModel, table=True):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("carrier", "tracking_no"),)
    id: int | None = Field(default=None, primary_key=True)
    order_no: str = Field(index=True, max_length=64)
    warehouse: str = Field(max_length=32)
    carrier: str = Field(max_length=32)
    tracking_no: str = Field(max_length=64)
    status: str = Field(default="PENDING", max_length=32)
    signed_by: str | None = Field(default=None, max_length=200)
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dispatched_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # By when the carrier promised to deliver it (dispatch + its ORDERFLOW_CARRIER_PROMISE_DAYS), fixed at dispatch.
    promised_by: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)  # signed for, or back / lost


class TrackingEvent(SQLModel, table=True):
    __tablename__ = "tracking_events"
    __table_args__ = (UniqueConstraint("carrier", "tracking_no", "status", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    carrier: str = Field(max_length=32)
    tracking_no: str = Field(index=True, max_length=64)
    status: str = Field(max_length=32)
    at: datetime = Field(sa_type=UTCDateTime)
    location: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=500)


class NotificationStatus(StrEnum):
    """Where an outbox row is on its way out (services/notify/relay.py moves it)."""

    QUEUED = "queued"  # due at next_attempt_at (new rows: at once; after a failed attempt: after a backoff)
    SENDING = "sending"  # claimed by a relay until next_attempt_at (the lease); due again after it (at-least-once)
    SENT = "sent"  # accepted by the SMTP server / the SMS gateway (sent_at)
    DELIVERED = "delivered"  # 'internal' notices: shown in-app, nothing to send
    UNSENT = "unsent"  # its channel is not configured (last_error says which setting); sent once it is
    FAILED = "failed"  # refused for good, or notify_max_attempts used up (last_error)
    SKIPPED = "skipped"  # written before delivery existed (migration 0004): never sent


class Notification(SQLModel, table=True):
    """Outbox of notices to customers and staff; `key` makes a retried activity write it once.

    The relay (services/notify/relay.py) sends what is due: ix_notifications_due finds it.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    order_no: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=64)
    channel: str = Field(max_length=16)  # email | sms | internal
    recipient: str = Field(max_length=200)
    subject: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    body: str = Field(max_length=4000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default=NotificationStatus.QUEUED, max_length=16, sa_column_kwargs={"server_default": "queued"})
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # When the row is next due: a queued row's next try, a sending row's lease end; None once it is settled.
    next_attempt_at: datetime | None = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=1000)
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # an internal notice its addressee has read


class IntakeKey(SQLModel, table=True):
    """An `Idempotency-Key` a client sent with POST /orders: the same key again means the same order (scoped per
    API user, so two integrations cannot collide); reusing it for other content is refused with 409."""

    __tablename__ = "intake_keys"
    user_name: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    order_no: str = Field(max_length=64)
    content_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- automations (rules/automation.py; services/automation/) --------------------------------------


class AutomationRule(SQLModel, table=True):
    """Every saved version of every automation rule; the highest version of a name is the one in force.
    Versions are never edited: a save, an enable or a disable adds one (who, when, why)."""

    __tablename__ = "automation_rules"
    name: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    definition: dict[str, Any] = Field(sa_type=JSON)
    enabled: bool
    owner: str = Field(max_length=64)
    saved_by: str = Field(max_length=64)
    saved_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    note: str = Field(default="", max_length=500)


class AutomationEvent(SQLModel, table=True):
    """Outbox of what happened (order created, status and field changes, parcel news, stock crossings), written
    in the change's own transaction; the dispatcher matches it against the rules once (`key` is unique)."""

    __tablename__ = "automation_events"
    __table_args__ = (Index("ix_automation_events_pending", "handled_at", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    kind: str = Field(max_length=32)
    subject: str = Field(max_length=100)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    caused_by: list[str] = Field(default_factory=list, sa_type=JSON)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)  # a dispatcher's lease
    handled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AutomationRun(SQLModel, table=True):
    """One firing of one rule version on one subject: its run log (steps in automation_steps).
    `run_id` is the AutomationRun workflow's id, derived from (rule, version, subject, event)."""

    __tablename__ = "automation_runs"
    run_id: str = Field(primary_key=True, max_length=200)
    rule: str = Field(index=True, max_length=64)
    version: int
    subject: str = Field(index=True, max_length=100)
    trigger: str = Field(max_length=32)
    event_key: str = Field(max_length=200)
    event_data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    caused_by: list[str] = Field(default_factory=list, sa_type=JSON)
    facts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # as the run saw them when it chose
    branch: int | None = None
    state: str = Field(index=True, max_length=16)  # running | waiting | completed | failed | skipped
    attempt: int = 0  # 0, then one more per retry
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=2000)


class AutomationStep(SQLModel, table=True):
    """One action of a run (per attempt): done, failed (with the error), skipped or waiting (until when)."""

    __tablename__ = "automation_steps"
    __table_args__ = (UniqueConstraint("run_id", "attempt", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True, max_length=200)
    attempt: int
    position: int
    action: str = Field(max_length=16)
    state: str = Field(max_length=16)  # done | failed | skipped | waiting
    detail: str = Field(default="", max_length=2000)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Task(SQLModel, table=True):
    """A to-do for a role or a user (from an automation, `key` keeps a retried action to one), done in the
    console by whoever holds it."""

    __tablename__ = "tasks"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    title: str = Field(max_length=200)
    role: str | None = Field(default=None, index=True, max_length=32)
    user: str | None = Field(default=None, index=True, max_length=64)
    subject: str = Field(default="", max_length=100)
    order_no: str | None = Field(default=None, index=True, max_length=64)
    source: str = Field(default="", max_length=64)  # the rule that opened it
    state: str = Field(default="open", index=True, max_length=16)  # open | done
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    done_by: str | None = Field(default=None, max_length=64)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --- money: invoices and the receivables ledger (domain/billing.py has the arithmetic) ---------------------------


class InvoiceSeries(SQLModel, table=True):
    """The gap-free number series of one legal entity and year; `last` is the last number issued. An issue takes
    the next one with UPDATE … SET last = last + 1 in the transaction that inserts its invoice: the row's lock
    (Postgres) or the write lock (SQLite) keeps two issuers from sharing a number, and an issue rolled back gives
    its number back with it."""

    __tablename__ = "invoice_series"
    entity: str = Field(primary_key=True, max_length=16)
    year: int = Field(primary_key=True)
    last: int = 0


class Invoice(SQLModel, table=True):
    """An invoice (or a credit note: `kind`, `corrects`) as issued: never edited; a mistake gets a credit note."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("entity", "year", "seq"),)
    invoice_no: str = Field(primary_key=True, max_length=32)
    key: str = Field(unique=True, max_length=200)  # what it bills (order, parcel): issued once, whatever the retries
    kind: str = Field(max_length=16)  # invoice | credit_note
    entity: str = Field(max_length=16)
    year: int
    seq: int
    order_no: str = Field(index=True, max_length=64)
    customer_id: str = Field(index=True, max_length=64)
    tracking_no: str | None = Field(default=None, max_length=64)  # the parcel it bills; None: the whole order
    corrects: str | None = Field(default=None, max_length=32)  # a credit note's invoice
    currency: str = Field(max_length=3)
    net: Decimal = Field(sa_type=MoneyCents)
    tax: Decimal = Field(sa_type=MoneyCents)
    total: Decimal = Field(sa_type=MoneyCents)
    issued_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(default="", max_length=500)


class InvoiceLine(SQLModel, table=True):
    __tablename__ = "invoice_lines"
    __table_args__ = (UniqueConstraint("invoice_no", "position"),)
    id: int | None = Field(default=None, primary_key=True)
    invoice_no: str = Field(index=True, max_length=32)
    position: int
    sku: str = Field(max_length=64)
    description: str = Field(max_length=200)
    qty: int
    unit_price: Decimal = Field(sa_type=MoneyCents)  # tax included
    tax_rate_bp: int  # basis points: 1300 = 13 %
    net: Decimal = Field(sa_type=MoneyCents)
    tax: Decimal = Field(sa_type=MoneyCents)
    gross: Decimal = Field(sa_type=MoneyCents)
    corrects_line: int | None = None  # a credit note's line: the position of the invoice line it credits


class LedgerEntry(SQLModel, table=True):
    """The receivables ledger: what a customer owes moves only by entries, never by editing one (a mistake is
    corrected by another). amount > 0 is owed to us (an opening balance, an invoice, a refund paid out); < 0
    settles (a payment, a credit note). A customer's balance is the sum of their entries."""

    __tablename__ = "ledger_entries"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)  # booked once, whatever the retries or re-imports
    customer_id: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)  # opening | invoice | payment | credit_note | refund
    amount: Decimal = Field(sa_type=MoneyCents)
    currency: str = Field(max_length=3)
    order_no: str | None = Field(default=None, index=True, max_length=64)
    invoice_no: str | None = Field(default=None, index=True, max_length=32)
    reference: str = Field(default="", index=True, max_length=200)  # the bank's or provider's, an invoice number
    at: datetime = Field(sa_type=UTCDateTime)
    by: str = Field(default="", max_length=64)


class BankLine(SQLModel, table=True):
    """A line of an imported bank statement: matched to the order it paid (and booked as that payment, its key the
    payment's reference), or waiting in finance's "to match" queue with the reason. Imported once per key."""

    __tablename__ = "bank_lines"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)  # the bank's transaction id, or the line's content (+ occurrence)
    booked_on: date
    amount: Decimal = Field(sa_type=MoneyCents)
    payer: str = Field(default="", max_length=200)
    reference: str = Field(default="", max_length=200)
    state: str = Field(index=True, max_length=16)  # matched | to_match
    why: str = Field(default="", max_length=500)
    order_no: str | None = Field(default=None, index=True, max_length=64)
    file: str = Field(default="", max_length=200)
    line_no: int = 0
    imported_at: datetime = Field(sa_type=UTCDateTime)
    imported_by: str = Field(default="", max_length=64)
    matched_by: str | None = Field(default=None, max_length=64)  # "auto", or who matched it by hand
