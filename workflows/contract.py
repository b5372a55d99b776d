"""The Temporal contract: what the workflows, the activities, the API, the CLI and the tests agree on.

Workflow types and ids (and reading an order number back out of an id), signal / update / query names, the notices
an order sends, the error types a workflow or an activity refuses with (the API maps them to HTTP answers), the
custom search attributes and the memo key of an order's content hash. Plain constants and pure functions: the
workflow sandbox imports this module, and so do clients that never load a workflow.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final

from temporalio.common import SearchAttributeKey

from models.status import NoticeKind as NoticeKind  # the notices an order sends (defined with the statuses)

# --- workflow types and ids ----------------------------------------------------------------------------------------

ORDER_WORKFLOW: Final = "OrderFulfillment"
TRACKING_WORKFLOW: Final = "ShipmentTracking"
POLLER_WORKFLOW: Final = "CarrierPoller"
RESTOCK_WORKFLOW: Final = "RestockWakeUp"
AUTOMATION_WORKFLOW: Final = "AutomationRun"
AUTOMATION_SCHEDULE_WORKFLOW: Final = "AutomationSchedule"  # what a scheduled rule's Temporal Schedule starts
REFUND_WORKFLOW: Final = "RefundPayment"
# The automation actions that only write to our database (one transaction each, effect and run-log step together).
AUTOMATION_DATABASE_ACTIONS: Final = frozenset({"notify", "set", "todo", "requisition"})

_ORDER_PREFIX: Final = "order-"
_TRACKING_PREFIX: Final = "track-"
_POLLER_PREFIX: Final = "carrier-poller-"
_RESTOCK_PREFIX: Final = "restock-"
_AUTOMATION_PREFIX: Final = "auto-"
_REFUND_PREFIX: Final = "refund-"


def order_workflow_id(order_no: str) -> str:
    """One workflow per order, for good: starting the same order again finds this id."""
    return f"{_ORDER_PREFIX}{order_no}"


def order_no_of(workflow_id: str) -> str | None:
    """The order number inside an order workflow's id; None for any other workflow."""
    if not workflow_id.startswith(_ORDER_PREFIX) or len(workflow_id) == len(_ORDER_PREFIX):
        return None
    return workflow_id[len(_ORDER_PREFIX) :]


REFUND_DECISION_LEVEL: Final = 1  # the one level a refund's finance decision is signed for


def refund_workflow_id(order_no: str) -> str:
    """One refund per order, for good (a stopped order is refunded once)."""
    return f"{_REFUND_PREFIX}{order_no}"


def refund_order_no_of(workflow_id: str) -> str | None:
    """The order number inside a refund workflow's id; None for any other workflow."""
    if not workflow_id.startswith(_REFUND_PREFIX) or len(workflow_id) == len(_REFUND_PREFIX):
        return None
    return workflow_id[len(_REFUND_PREFIX) :]


def tracking_workflow_id(carrier: str, tracking_no: str) -> str:
    return f"{_TRACKING_PREFIX}{carrier}-{tracking_no}"


def poller_workflow_id(carrier: str, task_queue: str) -> str:
    return f"{_POLLER_PREFIX}{carrier}-{task_queue}"


def restock_workflow_id(receipt_id: int, booked_at: str) -> str:
    """One wake-up per goods receipt (its row and when it was booked: a database started afresh reuses row ids):
    booking the same receipt again wakes nobody twice."""
    return f"{_RESTOCK_PREFIX}{receipt_id}-{booked_at}"


def automation_run_id(rule: str, version: int, subject: str, event_key: str) -> str:
    """One run per (rule, version, subject, triggering event): the same event delivered again finds this id and
    fires nothing twice. The event key is hashed (it may be long or hold any character)."""
    digest = hashlib.sha256(event_key.encode()).hexdigest()[:16]
    return f"{_AUTOMATION_PREFIX}{rule}-v{version}-{subject[:80]}-{digest}"


def automation_retry_id(run_id: str, attempt: int) -> str:
    """The workflow of a failed run's retry number `attempt` (the run log keeps the first id)."""
    return f"{run_id}~retry{attempt}"


# --- messages ------------------------------------------------------------------------------------------------------


class Update(StrEnum):
    """Updates of OrderFulfillment: each answers the order's state once the workflow has acted on it. RefundPayment
    takes `decide` too (finance's signed decision on a refund over the approval amount)."""

    DECIDE = "decide"
    PAYMENT_RECEIVED = "payment_received"
    DISPATCHED = "dispatched"
    CANCEL = "cancel"


class Signal(StrEnum):
    RESTOCKED = "restocked"  # OrderFulfillment: stock arrived, look again
    CREDIT_RECHECK = "credit_recheck"  # OrderFulfillment on credit hold: a payment came in, look at the exposure again
    SHIPMENT_PROGRESS = "shipment_progress"  # ShipmentTracking → its OrderFulfillment
    PARCEL_NEWS = "parcel_news"  # carrier push / CarrierPoller sweep → ShipmentTracking
    PARCEL_OPENED = "parcel_opened"  # ShipmentTracking → its carrier's CarrierPoller


class Query(StrEnum):
    STATE = (
        "state"  # OrderFulfillment: what it knows right now (models.contracts.OrderState); RefundPayment: RefundView
    )


# --- refusals and failures -----------------------------------------------------------------------------------------


class ErrorType(StrEnum):
    """ApplicationError types. The first group are refusals of an update (its validator or handler): the API answers
    them 409, except FORBIDDEN 403, INVALID 422 and UNSIGNED_DECISION 503 (our own signature refused: the API's and
    the worker's secrets differ). The rest are activity failures the workflows react to."""

    NOT_AWAITING = "NotAwaiting"  # the order is not waiting for this input now
    FORBIDDEN = "Forbidden"  # this person may not give this input
    INVALID = "Invalid"  # the input itself is wrong
    UNSIGNED_DECISION = "UnsignedDecision"  # a decision without a valid signature of the API
    DISPATCH_REFUSED = "DispatchRefused"  # the dispatch was taken and then refused (another order's parcel number)
    CLOSED = "Closed"  # the workflow has ended and takes no more input

    DUPLICATE_TRACKING_NO = "DuplicateTrackingNo"  # record_dispatch: the number belongs to another order
    UNKNOWN_CARRIER = "UnknownCarrier"  # no adapter for the carrier code: retrying cannot help
    UNKNOWN_CUSTOMER = "UnknownCustomer"
    LEDGER_MISMATCH = "LedgerMismatch"  # less on hand than reserved: the stock ledger is broken
    RULE_ERROR = "RuleError"  # the rules file fails on this order: retried until an operator fixes it
    NO_NEW_TRACKING_EVENTS = "NoNewTrackingEvents"  # a poll with nothing new (the infrequent-poll pattern)
    CARRIER_UNAVAILABLE = "CarrierUnavailable"  # the carrier could not answer; retried at the poll interval
    CARRIER_UNREADABLE = "CarrierUnreadable"  # its answer could not be read (an adapter's bug): retried the same way
    REFUND_REFUSED = "RefundRefused"  # the payment provider refused the refund for good: finance makes it by hand


# Poll failures that mean "no news from the carrier" (as opposed to a broken set-up, e.g. an unknown carrier).
STALL_ERRORS: Final = frozenset(
    {ErrorType.NO_NEW_TRACKING_EVENTS, ErrorType.CARRIER_UNAVAILABLE, ErrorType.CARRIER_UNREADABLE}
)

# --- search attributes and memo ------------------------------------------------------------------------------------

# Registered by the embedded stack (--search-attribute), docker-compose.yml and the test servers. No PII here.
ORDER_STATUS: Final = SearchAttributeKey.for_keyword("OrderStatus")
CUSTOMER_ID: Final = SearchAttributeKey.for_keyword("CustomerId")
CHANNEL: Final = SearchAttributeKey.for_keyword("Channel")
ORDER_TOTAL: Final = SearchAttributeKey.for_float("OrderTotal")
SEARCH_ATTRIBUTES: Final = (ORDER_STATUS, CUSTOMER_ID, CHANNEL, ORDER_TOTAL)

CONTENT_HASH_MEMO: Final = "content_sha256"  # an order workflow's memo: the hash of the order it was started with
