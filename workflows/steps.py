"""The activities the workflows call, as typed interfaces, and how long each stage may take.

A workflow calls `workflow.execute_activity_method(RecordSteps.record_transition, ...)`: the name, the payload types
and the result type come from here, so the workflow code never imports an implementation (activities/ subclasses
these classes; an implementation that misses a method cannot be built, and mypy checks every override).

Timeouts per stage. Database steps get 30 s: above SQLite's 20 s wait for the write lock (core/db.py), so an
attempt gives up waiting before Temporal retries it and a stale attempt cannot commit behind its own retry (each
step is idempotent on its key anyway). Allocation gets 60 s: it locks every candidate lot and, on Postgres, may
queue behind other orders' locks. Retries back off from 1 s to 30 s, without limit: a database outage is waited
out, business refusals are non-retryable ApplicationErrors (workflows/contract.py ErrorType).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity
from temporalio.common import RetryPolicy

from models.contracts import (
    ActionInput,
    AllocateInput,
    AllocateOutcome,
    ApprovalAudit,
    CloseParcelInput,
    CreditInput,
    CreditOutcome,
    DispatchRecord,
    EnsurePollerInput,
    FulfillmentInput,
    NotifyInput,
    OrderRef,
    PickListsInput,
    PollInput,
    RefundDecision,
    RefundFailure,
    RefundInput,
    RefundOpened,
    RefundPaid,
    RefundPayout,
    RegisterOrderInput,
    ReviewInput,
    ReviewOutcome,
    RunRef,
    ScheduleFire,
    StepRecord,
    SubscribeInput,
    SweepInput,
    SweepOutcome,
    TransitionInput,
    ValidationOutcome,
    WakeBackorderedInput,
)
from models.tracking import TrackingSnapshot

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@dataclass(frozen=True)
class Stage:
    """How long one attempt of a stage's activity may run, and how it is retried."""

    start_to_close: timedelta
    retry: RetryPolicy = field(default_factory=lambda: DB_RETRY)


RECORDING = Stage(timedelta(seconds=30))  # read model, audit trail, pick lists, dispatch: short DB writes
CHECKING = Stage(timedelta(seconds=30))  # validation, review, credit: reads and pure decisions
ALLOCATING = Stage(timedelta(seconds=60))  # stock locking: waits for other orders' row locks on Postgres
COMPENSATING = Stage(timedelta(seconds=30))  # release stock, void pick lists
NOTIFYING = Stage(timedelta(seconds=30))  # one outbox row per recipient; the relay sends after commit
# Waking backordered orders one at a time (each gets ~10 s to re-check): long, so it heartbeats per order.
WAKING = Stage(timedelta(hours=1))
WAKING_HEARTBEAT = timedelta(seconds=30)
AUTOMATING = Stage(timedelta(seconds=30))  # an automation's database action, its facts, its run log
# A refund asked of the payment provider: while it is unreachable (5xx, timeouts) asked again with the same
# idempotency key, backing off to every 5 minutes, for as long as it takes; a refusal (4xx) is final.
PAYING_OUT = Stage(
    timedelta(seconds=30), RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))
)
# An automation's outgoing webhook: the far end may be down, so a few tries with backoff (2, 4, 8, 16 s), then
# the step shows failed (a retry of the run from that step tries again).
WEBHOOK_CALLING = Stage(
    timedelta(seconds=30),
    RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=60), maximum_attempts=5),
)


class RecordSteps(ABC):
    """The read model and the audit trail (activities/records.py)."""

    @activity.defn
    @abstractmethod
    def register_order(self, inp: RegisterOrderInput) -> None: ...

    @activity.defn
    @abstractmethod
    def record_transition(self, inp: TransitionInput) -> None: ...

    @activity.defn
    @abstractmethod
    def record_approval(self, inp: ApprovalAudit) -> None: ...


class ValidationSteps(ABC):
    @activity.defn
    @abstractmethod
    def validate_order(self, inp: FulfillmentInput) -> ValidationOutcome: ...


class ReviewSteps(ABC):
    @activity.defn
    @abstractmethod
    def review_order(self, inp: ReviewInput) -> ReviewOutcome: ...


class CreditSteps(ABC):
    @activity.defn
    @abstractmethod
    def check_credit(self, inp: CreditInput) -> CreditOutcome: ...


class InventorySteps(ABC):
    @activity.defn
    @abstractmethod
    def allocate_stock(self, inp: AllocateInput) -> AllocateOutcome: ...

    @activity.defn
    @abstractmethod
    def release_stock(self, inp: OrderRef) -> int: ...


class PickingSteps(ABC):
    @activity.defn
    @abstractmethod
    def issue_pick_lists(self, inp: PickListsInput) -> list[str]: ...

    @activity.defn
    @abstractmethod
    def void_pick_lists(self, inp: OrderRef) -> int: ...


class ShippingSteps(ABC):
    @activity.defn
    @abstractmethod
    def record_dispatch(self, inp: DispatchRecord) -> None: ...


class NotifySteps(ABC):
    @activity.defn
    @abstractmethod
    def notify(self, inp: NotifyInput) -> int: ...


class TrackingSteps(ABC):
    """Carriers: polls, batch sweeps, push subscriptions (activities/tracking.py)."""

    @activity.defn
    @abstractmethod
    async def subscribe_parcel(self, inp: SubscribeInput) -> None: ...

    @activity.defn
    @abstractmethod
    async def ensure_carrier_poller(self, inp: EnsurePollerInput) -> str: ...

    @activity.defn
    @abstractmethod
    async def sweep_carrier(self, inp: SweepInput) -> SweepOutcome: ...

    @activity.defn
    @abstractmethod
    def close_parcel(self, inp: CloseParcelInput) -> None: ...

    @activity.defn
    @abstractmethod
    async def poll_parcel(self, inp: PollInput) -> TrackingSnapshot: ...


class RestockSteps(ABC):
    @activity.defn
    @abstractmethod
    async def wake_backordered_orders(self, inp: WakeBackorderedInput) -> list[str]: ...


class AutomationSteps(ABC):
    """Automation runs (activities/automation.py): the facts and branch after a delay, each action, the run log."""

    @activity.defn
    @abstractmethod
    def choose_branch(self, inp: RunRef) -> int | None: ...

    @activity.defn
    @abstractmethod
    async def perform_action(self, inp: ActionInput) -> str: ...

    @activity.defn
    @abstractmethod
    def record_step(self, inp: StepRecord) -> None: ...

    @activity.defn
    @abstractmethod
    def fire_schedule(self, inp: ScheduleFire) -> int: ...


INTERFACES: tuple[type, ...] = (
    RecordSteps,
    ValidationSteps,
    ReviewSteps,
    CreditSteps,
    InventorySteps,
    PickingSteps,
    ShippingSteps,
    NotifySteps,
    TrackingSteps,
    RestockSteps,
    AutomationSteps,
)


class RefundSteps(ABC):
    """A stopped paid order's refund (activities/refunds.py): the record, finance's decision, the provider."""

    @activity.defn
    @abstractmethod
    def open_refund(self, inp: RefundInput) -> RefundOpened: ...

    @activity.defn
    @abstractmethod
    def record_refund_decision(self, inp: RefundDecision) -> None: ...

    @activity.defn
    @abstractmethod
    async def pay_out_refund(self, inp: RefundPayout) -> RefundPaid: ...

    @activity.defn
    @abstractmethod
    def complete_refund(self, inp: RefundPaid) -> None: ...

    @activity.defn
    @abstractmethod
    def fail_refund(self, inp: RefundFailure) -> None: ...
