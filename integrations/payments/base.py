"""The refund interface: what we ask a payment provider for, what it answers, and how it says no.

A refund is asked for under our own idempotency key (`refund:<order_no>`), so asking again — a retried activity,
a worker that died after the call — never refunds twice: the provider answers with the refund it already made.
Two errors tell a caller what to do next: `RefundUnavailable` (try again later, with the same key) and
`RefundRejected` (the provider will never make this refund; a person has to look).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class RefundRequest:
    key: str  # our idempotency key, e.g. "refund:SO-1": the same key never refunds twice
    payment_reference: str  # the provider's id of the payment being refunded
    amount: Decimal  # in the currency's units (12.34), at most two decimals
    currency: str  # ISO 4217, upper case ("CNY")
    reason: str


@dataclass(frozen=True)
class RefundResult:
    provider_ref: str  # the provider's id of the refund ("re_…")
    status: str  # "succeeded", or "pending" when the provider completes it later
    amount: Decimal
    currency: str
    created_at: datetime  # timezone-aware UTC: when the provider made the refund (the first time it was asked)


class RefundUnavailable(Exception):
    """The provider could not be asked or did not answer usefully (5xx, timeout, connection refused, a malformed
    answer): nothing is known to have happened; ask again later with the same key."""


class RefundRejected(Exception):
    """The provider refuses this refund for good (4xx: unknown payment, more than was paid, a bad key, the key
    reused for another refund); the message says why. Asking again will not change the answer."""


class RefundProvider(Protocol):
    async def refund(self, request: RefundRequest) -> RefundResult:
        """Make the refund (or find the one made under `request.key`); RefundUnavailable / RefundRejected."""
        ...
