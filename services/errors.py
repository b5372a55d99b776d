"""Refusals of the application layer: one clear line for the person or system that asked.

The HTTP API maps them to answers in one place (entrypoints/api/app.py), the CLI prints them as one line on stderr.
"""

from __future__ import annotations

from workflows.contract import ErrorType


class CommandError(Exception):
    """A refusal with one clear line for the person or system that asked."""


class NotFound(CommandError):
    """Something asked for does not exist (an order, a SKU): 404."""


class OrderNotFound(NotFound):
    pass


class OrderConflict(CommandError):
    """The same order number (or idempotency key) with other content: 409."""


class ReceiptConflict(CommandError):
    """The receipt number was already used for a different receipt: 409."""


class Refused(CommandError):
    """The order refused the input; `kind` is the refusal's ErrorType (workflows/contract.py)."""

    def __init__(self, message: str, kind: str = ErrorType.NOT_AWAITING) -> None:
        super().__init__(message)
        self.kind = kind
