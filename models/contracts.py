"""Workflow, activity, signal, update and query payloads: one pydantic model in, one out."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.allocation import Allocation, AllocationMode, LotOrder
from models.order import Order
from models.status import OrderStatus, Role, TrackingStatus


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- workflow input / result ---------------------------------------------------------------------


class FulfillmentInput(Contract):
    order: Order


class FulfillmentResult(Contract):
    order_no: str
    status: OrderStatus
    reasons: list[str] = []


class Policy(Contract):
    """The business policy one order workflow follows, handed to it by the review step (so replays see the values
    the run saw). Its values always come from the worker's settings (core.config.PolicySettings.workflow_policy);
    the defaults here only stand for runs recorded before a field existed (what those runs did without it)."""

    allow_split: bool
    approval_reminder: timedelta
    approval_deadline: timedelta
    payment_deadline: timedelta
    backorder_recheck: timedelta
    backorder_deadline: timedelta
    tracking_poll_interval: timedelta
    tracking_stall_after: timedelta = timedelta(days=3)
    tracking_give_up_after: timedelta = timedelta(days=30)
    # Carriers whose parcels are polled together by one CarrierPoller sweep (batch queries), not one by one.
    tracking_batch_carriers: list[str] = []
    # Carrier → the URL it should push a parcel's news to, for carriers that take a per-parcel subscription.
    tracking_push_callbacks: dict[str, str] = {}
    # The carrier codes the worker has an adapter for (a dispatch naming another is refused). Empty for runs from
    # before they were listed: the dispatch step itself refuses unknown carriers then.
    carriers: list[str] = []
    lot_order: LotOrder = "fifo"


# --- activities ---------------------------------------------------------------------------------


class RegisterOrderInput(Contract):
    order: Order
    received_at: AwareDatetime


class ValidationOutcome(Contract):
    reasons: list[str]
    customer_new: bool = False


class ReviewInput(Contract):
    order: Order
    customer_new: bool


class ReviewOutcome(Contract):
    approval_roles: list[Role]
    prepay_required: bool
    skip_finance: bool
    fired: list[str]
    policy: Policy
    allocation: AllocationMode | None = None  # a rule's choice; None: the policy's default
    lot_order: LotOrder | None = None


class CreditInput(Contract):
    order_no: str
    customer_id: str
    total: Decimal


class CreditOutcome(Contract):
    hold: bool
    limit: Decimal
    exposure: Decimal


class AwaitingDecision(Contract):
    """The approval level an order waits for after a transition: who must decide, by when."""

    role: Role
    level: int
    until: AwareDatetime
    why: list[str] = []  # the rules that fired, a credit hold's reason


class TransitionInput(Contract):
    order_no: str
    seq: int
    status: OrderStatus
    at: AwareDatetime
    detail: str = ""
    paid: bool | None = None
    reasons: list[str] | None = None
    awaiting: AwaitingDecision | None = None  # None: the order waits for no approver (any more)
    # With paid=True: the payment's reference and who recorded it (booked in the receivables ledger).
    payment_reference: str = ""
    paid_by: str = ""


class ApprovalAudit(Contract):
    order_no: str
    level: int
    role: Role
    by: str
    decision: Literal["approve", "reject"]
    at: AwareDatetime
    comment: str = ""
    on_behalf_of: str = ""  # the absent approver a substitute decided for (services/substitutes.py)


class AllocateInput(Contract):
    order_no: str
    ship_to_region: str
    lines: list[tuple[int, str, int]]  # (line_no, sku, qty)
    allow_split: bool
    lot_order: LotOrder = "fifo"


class AllocateOutcome(Contract):
    allocations: list[Allocation]
    shortages: dict[str, int] = {}


class PickListsInput(Contract):
    order_no: str
    allocations: list[Allocation]


class OrderRef(Contract):
    order_no: str


class DispatchRecord(Contract):
    order_no: str
    warehouse: str
    carrier: str
    tracking_no: str
    at: AwareDatetime
    # Write the parcel_dispatched automation event with the shipment: the customer's dispatch notice is the default
    # rule `dispatched-tell-customer` (workflows started before that patch send it themselves, and say False).
    announce: bool = False


class NotifyInput(Contract):
    key: str  # order_no:kind[:suffix] — the outbox's unique key
    order_no: str
    kind: str
    audience: Literal["customer", "role"]
    role: Role | None = None
    variables: dict[str, str] = {}


class PollInput(Contract):
    order_no: str
    carrier: str
    tracking_no: str
    known_status: TrackingStatus
    known_events: int


# --- human input (updates / signals) and the query ----------------------------------------------


class DecisionInput(Contract):
    decision: Literal["approve", "reject"]
    by: str = Field(min_length=1)
    role: str = Field(min_length=1)
    comment: str = ""
    # The approval level decided and the API's signature over all of the above (domain.decision_signing);
    # the worker refuses decisions whose signature does not verify. Level 0: sent before levels were signed.
    level: int = 0
    signature: str = ""
    # A substitute deciding for an absent approver (out of office): `by` is the substitute, `role` the absent
    # approver's, who is named here; the API checks the substitution stands and signs this too.
    on_behalf_of: str = ""


class PaymentInput(Contract):
    reference: str = ""
    by: str = ""


class DispatchInput(Contract):
    warehouse: str = Field(min_length=1)
    carrier: str = Field(min_length=1)
    tracking_no: str = Field(min_length=1)
    by: str = ""


class CancelInput(Contract):
    reason: str = Field(min_length=1)
    by: str = ""


class RestockInput(Contract):
    skus: list[str] = []


class WakeBackorderedInput(Contract):
    """RestockWakeUp: tell these backordered orders (oldest first) that stock of `skus` arrived."""

    order_nos: list[str]
    skus: list[str]


class ShipmentProgress(Contract):
    carrier: str
    tracking_no: str
    status: TrackingStatus
    at: datetime | None = None
    signed_by: str | None = None
    signed_at: datetime | None = None


class TrackingInput(Contract):
    order_no: str
    parent_workflow_id: str
    carrier: str
    tracking_no: str
    poll_interval: timedelta
    stall_after: timedelta = timedelta(days=3)
    give_up_after: timedelta = timedelta(days=30)
    known_status: TrackingStatus = TrackingStatus.PENDING
    known_events: int = 0
    # True: the carrier's CarrierPoller sweeps this parcel (batched); the workflow only waits for news.
    batched: bool = False
    # Ask the carrier to push news to this URL (carriers with per-parcel subscriptions); None: do not.
    push_callback: str | None = None
    # Time of the last carrier news (carried across continue-as-new so stall and expiry keep counting).
    last_news_at: datetime | None = None
    last_event_at: datetime | None = None  # the newest carrier event taken so far (late re-sends are older)
    stalled: bool = False


class PollerInput(Contract):
    """CarrierPoller: sweep every open parcel of `carrier` each `interval`, in the carrier's batch query."""

    carrier: str
    interval: timedelta
    give_up_after: timedelta = timedelta(days=30)
    sweeps: int = 0  # sweeps done by earlier runs (continue-as-new), for the logs
    next_sweep_at: datetime | None = None  # set by a run that continued as new mid-pause
    max_events_per_run: int | None = None  # None: the poller's own bound (tests lower it)


class SweepInput(Contract):
    carrier: str
    give_up_after: timedelta


class SweepOutcome(Contract):
    parcels: int = 0  # open parcels asked about
    calls: int = 0  # HTTP calls to the carrier
    news: int = 0  # parcels with news, signalled to their ShipmentTracking
    failed_calls: int = 0
    retry_after: float | None = None  # the carrier asked us to back off this many seconds


class CloseParcelInput(Contract):
    carrier: str
    tracking_no: str
    status: TrackingStatus


class SubscribeInput(Contract):
    carrier: str
    tracking_no: str
    callback_url: str


class EnsurePollerInput(Contract):
    carrier: str
    interval: timedelta
    give_up_after: timedelta


class TrackingResult(Contract):
    carrier: str
    tracking_no: str
    status: TrackingStatus
    signed_by: str | None = None
    signed_at: datetime | None = None


class PendingApproval(Contract):
    level: int
    role: Role
    credit_hold: bool


class OrderState(Contract):
    """What the workflow knows right now (the `state` query and every update's answer)."""

    order_no: str
    status: OrderStatus
    pending_approval: PendingApproval | None = None
    awaiting_dispatch: list[str] = []
    shipments: list[ShipmentProgress] = []
    reasons: list[str] = []
    allocation_attempts: int = 0  # grows with every look at stock (a restock's re-check is visible)


# --- automations (workflows/automation.py) --------------------------------------------------------


class AutomationRunInput(Contract):
    """One firing: the rule as it was at `version` (the run is pinned to it), the subject and the event.
    `branch` is chosen by the dispatcher; a rule with a delay (`after`) chooses it when the delay is over."""

    run_id: str
    rule: str
    version: int
    definition: dict[str, Any]
    subject: str
    event_kind: str
    event_key: str
    event_data: dict[str, Any] = {}
    caused_by: list[str] = []
    branch: int | None = None
    delay: timedelta | None = None
    attempt: int = 0  # a retry of a failed run is attempt 1, 2 …
    start_at: int = 0  # the first action this attempt performs (a retry from the failed step)


class RunRef(Contract):
    """What an automation activity acts for: the run, its attempt, and what it is about."""

    run_id: str
    rule: str
    version: int
    attempt: int
    subject: str
    event_kind: str
    event_data: dict[str, Any] = {}
    caused_by: list[str] = []


class ActionInput(Contract):
    run: RunRef
    position: int
    action: dict[str, Any]  # one action of the pinned definition (rules/automation.py Action, as JSON)
    last: bool  # the run is completed once this one is done


class StepRecord(Contract):
    """A step's state in the run log, and the run's own state when it changes with it."""

    run: RunRef
    position: int
    action: str
    state: Literal["done", "failed", "skipped", "waiting"]
    detail: str = ""
    run_state: Literal["running", "waiting", "completed", "failed", "skipped"] | None = None


class ScheduleFire(Contract):
    """What a rule's Temporal Schedule starts with: the rule and the version the schedule was made from."""

    rule: str
    version: int


# --- refunds (workflows/refund.py) ---------------------------------------------------------------


class RefundInput(Contract):
    """A paid order stopped (cancelled, rejected, failed): pay back what of theirs we hold for it."""

    order_no: str
    reason: str = ""


class RefundOpened(Contract):
    """What open_refund found: the refund's state now, and what it is for."""

    state: str  # models.tables.RefundState
    amount: Decimal = Decimal("0.00")  # what we hold of the customer's for the order (0: nothing to refund)
    currency: str = ""
    payment_reference: str = ""  # the payment it pays back (the provider refunds against it)
    needs_approval: bool = False  # over the approval amount: a signed finance decision first


class RefundDecision(Contract):
    """A finance decision on a refund, as the refund workflow took it (recorded by record_refund_decision)."""

    order_no: str
    decision: Literal["approve", "reject"]
    by: str
    role: str
    comment: str = ""


class RefundPayout(Contract):
    order_no: str
    amount: Decimal
    currency: str
    payment_reference: str
    reason: str = ""


class RefundPaid(Contract):
    """The provider's answer: its refund id and when it was made."""

    order_no: str
    provider_ref: str
    amount: Decimal
    currency: str
    made_at: AwareDatetime


class RefundFailure(Contract):
    order_no: str
    why: str


class RefundView(Contract):
    """The refund workflow's `state` query: where it is, and the amount."""

    order_no: str
    state: str
    amount: Decimal = Decimal("0.00")
    currency: str = ""
    needs_approval: bool = False
    decided_by: str = ""
