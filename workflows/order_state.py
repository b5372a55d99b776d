"""What one OrderFulfillment run knows: its state in one place, and the exception that ends the happy path.

The workflow's message handlers write into it (a decision, a payment, a dispatch, a cancel request, parcel
progress); the stages (approval.py, dispatch.py) and the journey (order.py) read it and move it on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.allocation import Allocation, LotOrder
    from models.contracts import (
        CancelInput,
        DecisionInput,
        DispatchInput,
        OrderState,
        PaymentInput,
        PendingApproval,
        Policy,
        ShipmentProgress,
    )
    from models.order import Order
    from models.status import OrderStatus, Role


class Stop(Exception):
    """Ends the happy path early: the order is cancelled, rejected or failed, and compensation runs."""

    def __init__(self, status: OrderStatus, reason: str, reasons: list[str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.reasons = reasons or [reason]


@dataclass
class Level:
    """One approval level: who must decide it, and whether it carries a credit hold."""

    index: int
    role: Role
    credit_hold: bool = False
    # Added only because of the hold (no approval was needed anyway): released without a person once a payment
    # brings the exposure under the limit. A hold carried by a level that needs a decision anyway is not.
    credit_only: bool = False


@dataclass
class FulfillmentState:
    order: Order
    status: OrderStatus = OrderStatus.RECEIVED
    seq: int = 1  # the transition counter; RECEIVED is event 1, written by register_order
    reasons: list[str] = field(default_factory=list)
    policy: Policy | None = None  # the worker's policy, from the review step (None before it)
    fired: list[str] = field(default_factory=list)  # the review rules that fired (why approvals are needed)

    # --- payment and approvals (approval.py)
    paid: bool = False
    payment: PaymentInput | None = None  # the payment update's input, once it came
    level: Level | None = None  # the approval level awaited right now
    deciders: list[str] = field(default_factory=list)  # who decided earlier levels (four-eyes rule)
    decisions: list[DecisionInput] = field(default_factory=list)  # taken by the update, not yet acted on
    decisions_taken: int = 0
    decided_at_seq: int = 0  # the transition count when the last decision was acted on

    # --- cancel and allocation
    cancel_request: CancelInput | None = None
    restock_requested: bool = False
    credit_recheck: bool = False  # a payment of the customer's came in: is the order still over the limit?
    allow_split: bool = True
    lot_order: LotOrder = "fifo"
    allocation_attempts: int = 0  # grows with every look at stock (a restock's re-check is visible)
    allocations: list[Allocation] = field(default_factory=list)
    pick_lists_issued: bool = False

    # --- dispatch and parcels (dispatch.py)
    awaiting_dispatch: list[str] = field(default_factory=list)  # warehouses whose parcel has not left yet
    dispatch_queue: list[DispatchInput] = field(default_factory=list)  # taken by the update, not yet recorded
    dispatch_refusals: dict[str, str] = field(default_factory=dict)  # tracking no → why it was refused
    dispatches_processed: set[str] = field(default_factory=set)  # tracking numbers recorded
    parcels: dict[str, ShipmentProgress] = field(default_factory=dict)  # tracking no → what its tracking says
    # Progress reports, handled one at a time so that no stage is skipped (a failed attempt between two delivery
    # runs must flag the order even when both reports arrive together). Off in older histories.
    progress_queue: list[ShipmentProgress] = field(default_factory=list)
    progress_in_order: bool = False

    @property
    def reviewed(self) -> Policy:
        """The policy, for the stages after the review step (the first step of every run) has handed it over."""
        if self.policy is None:
            raise RuntimeError(f"order {self.order.order_no}: its policy was read before the review step")
        return self.policy

    def view(self) -> OrderState:
        """The `state` query's answer, and every update's."""
        pending = None
        if self.level is not None:
            pending = PendingApproval(level=self.level.index, role=self.level.role, credit_hold=self.level.credit_hold)
        return OrderState(
            order_no=self.order.order_no,
            status=self.status,
            pending_approval=pending,
            awaiting_dispatch=list(self.awaiting_dispatch),
            shipments=list(self.parcels.values()),
            reasons=list(self.reasons),
            allocation_attempts=self.allocation_attempts,
        )
