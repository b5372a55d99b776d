"""Order and tracking statuses (docs/architecture.md)."""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    RECEIVED = "RECEIVED"
    REJECTED = "REJECTED"
    CREDIT_HOLD = "CREDIT_HOLD"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    APPROVED = "APPROVED"
    BACKORDERED = "BACKORDERED"
    ALLOCATED = "ALLOCATED"
    PICKING = "PICKING"
    DISPATCHED = "DISPATCHED"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    DELIVERY_EXCEPTION = "DELIVERY_EXCEPTION"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


TERMINAL_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.FAILED})
# Orders the customer will never owe anything for: the rest count as credit exposure (services/billing/ledger.py)
# — what they have not been invoiced for yet; once invoiced, it is in the ledger's receivables until paid.
NEVER_BILLED = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.FAILED})
# Orders waiting for an approver's decision (a credit hold is finance's level).
AWAITING_DECISION = frozenset({OrderStatus.AWAITING_APPROVAL, OrderStatus.CREDIT_HOLD})
# Orders in these statuses can still be cancelled (nothing has left a warehouse yet).
CANCELLABLE_STATUSES = frozenset(
    {
        OrderStatus.RECEIVED,
        OrderStatus.CREDIT_HOLD,
        OrderStatus.AWAITING_PAYMENT,
        OrderStatus.AWAITING_APPROVAL,
        OrderStatus.APPROVED,
        OrderStatus.BACKORDERED,
        OrderStatus.ALLOCATED,
        OrderStatus.PICKING,
    }
)


class TrackingStatus(StrEnum):
    PENDING = "PENDING"
    INFO_RECEIVED = "INFO_RECEIVED"
    PICKED_UP = "PICKED_UP"
    IN_TRANSIT = "IN_TRANSIT"
    OUT_FOR_DELIVERY = "OUT_FOR_DELIVERY"
    AVAILABLE_FOR_PICKUP = "AVAILABLE_FOR_PICKUP"
    ATTEMPT_FAILED = "ATTEMPT_FAILED"
    DELIVERED = "DELIVERED"
    REFUSED = "REFUSED"
    RETURNING = "RETURNING"
    RETURNED = "RETURNED"
    EXCEPTION = "EXCEPTION"
    EXPIRED = "EXPIRED"


class Role(StrEnum):
    SALES = "sales"
    FINANCE = "finance"
    FINANCE_DIRECTOR = "finance_director"
    WAREHOUSE = "warehouse"
    OPS = "ops"
    ADMIN = "admin"


class NoticeKind(StrEnum):
    """The notices an order sends (the notify activity's `kind`, an automation notify action's `template`): every
    templates file must have each of them."""

    PAYMENT_REQUESTED = "payment_requested"  # customer
    APPROVAL_NEEDED = "approval_needed"  # the level's role
    APPROVAL_REMINDER = "approval_reminder"  # the level's role, once, before the deadline
    APPROVAL_ESCALATED = "approval_escalated"  # the role above it, with the reminder
    BACKORDERED = "backordered"  # ops
    REFUND = "refund"  # finance: a paid order was cancelled or rejected
    REFUNDED = "refunded"  # customer: their money was paid back
    REFUND_APPROVAL = "refund_approval"  # finance: a refund over the approval amount awaits a decision
    CANCELLED = "cancelled"  # customer
    REJECTED = "rejected"  # customer
    DISPATCHED = "dispatched"  # customer, once per parcel
    OUT_FOR_DELIVERY = "out_for_delivery"  # customer
    DELIVERY_EXCEPTION = "delivery_exception"  # customer and ops
    DELIVERED = "delivered"  # customer


class RefundState(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # over ORDERFLOW_REFUND_APPROVAL_OVER: a signed finance decision first
    APPROVED = "approved"  # being paid out through the payment provider
    DECLINED = "declined"  # finance said no (with why)
    MADE = "made"  # paid back: the provider's reference, or a reference finance recorded by hand
    FAILED = "failed"  # the provider refused it: finance makes it by hand (the finance page)
