"""Refunds through a payment provider's REST API in Stripe's shape, and that API's wire format.

    POST {payment_provider_url}/refunds
    Authorization: Bearer <payment_provider_key>
    Idempotency-Key: <RefundRequest.key>                  e.g. refund:SO-1
    {"payment": "pay_…", "amount": "12.34", "currency": "CNY", "reason": "..."}
    → 201 {"id": "re_…", "status": "succeeded", "payment": "pay_…", "amount": "12.34", "currency": "CNY",
           "reason": "...", "created": "2025-01-31T08:00:00Z"}
    the same Idempotency-Key again → 200 with the first refund (nothing new is refunded)
    errors → 4xx/5xx {"error": {"type": "...", "message": "...", "code": "..."}}

Money is Decimal end to end: `amount` travels as a decimal string (never a JSON number, so never a float), with at
most two decimals. What the answers mean to us:

    200, 201                 the refund (checked against what was asked: payment, amount, currency); one still
                             `pending` is RefundUnavailable (asked again, the key reads it once it is decided)
    408, 409, 425, 429, 5xx  RefundUnavailable: ask again later with the same key (409: a request with this key
                             is still being processed)
    other 4xx                RefundRejected with the provider's message (401 a wrong key, 402 a payment that
                             cannot be refunded, 400 a bad request or the key already used for another refund)
    a transport error        RefundUnavailable (connection refused, timeout)
    an answer we cannot read RefundUnavailable

The wire models live here, beside the client that owns the contract; the simulator
(dev/simulator/payment_provider.py) imports them to answer in exactly that shape.
"""

from __future__ import annotations

import re
from datetime import UTC
from decimal import Decimal
from typing import Annotated, Final, Literal

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from core.config import Settings
from integrations.payments.base import RefundRejected, RefundRequest, RefundResult, RefundUnavailable

REFUNDS_PATH: Final = "/refunds"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
# 4xx answers that are about now, not about the request: try again later.
# 409 is Stripe's "a request with this idempotency key is still being processed": asked again, the same key finds
# that refund once it is done (a key reused with other parameters is 400 there: final).
_TRANSIENT_CLIENT_ERRORS: Final = frozenset({408, 409, 425, 429})
_DECIMAL_STRING: Final = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def _decimal_string(value: object) -> object:
    """A Decimal as it is (built in Python), or a plain decimal string off the wire; never a number."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str) and _DECIMAL_STRING.match(value):
        return Decimal(value)
    raise ValueError('an amount is a decimal string such as "12.34"')


# An amount on the wire: a string of digits with at most two decimals, greater than zero; "100", not "1E+2".
WireAmount = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(gt=0, decimal_places=2),
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
RefundStatus = Literal["pending", "succeeded", "failed", "canceled"]


class RefundCreate(BaseModel):
    """The body of POST /refunds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    payment: str = Field(min_length=1, max_length=200)
    amount: WireAmount
    currency: Currency
    reason: str = Field("", max_length=500)


class RefundObject(BaseModel):
    """The provider's refund, as POST /refunds answers it (the fields we read)."""

    id: str = Field(min_length=1)
    status: RefundStatus
    payment: str
    amount: WireAmount
    currency: Currency
    reason: str = ""
    created: AwareDatetime


class ProviderErrorDetail(BaseModel):
    type: str = "api_error"
    message: str
    code: str | None = None


class ProviderError(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ProviderErrorDetail


def _validation_summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
    )


class HttpRefundProvider:
    """A `RefundProvider` (integrations/payments/base.py) over the provider's REST API, on a shared http client
    (its timeouts are the client's)."""

    def __init__(self, base_url: str, api_key: str, http: httpx.AsyncClient) -> None:
        self.url = base_url.rstrip("/") + REFUNDS_PATH
        self._api_key = api_key
        self._http = http

    async def refund(self, request: RefundRequest) -> RefundResult:
        try:
            body = RefundCreate(
                payment=request.payment_reference,
                amount=request.amount,
                currency=request.currency,
                reason=request.reason,
            )
        except ValidationError as exc:  # nothing a provider would take: never sent
            raise RefundRejected(f"refund {request.key} cannot be asked for: {_validation_summary(exc)}") from exc
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            IDEMPOTENCY_HEADER: request.key,
            "Content-Type": "application/json",
        }
        try:
            response = await self._http.post(self.url, content=body.model_dump_json(), headers=headers)
        except httpx.HTTPError as exc:
            raise RefundUnavailable(f"payment provider {self.url} unreachable: {exc!r}") from exc
        status = response.status_code
        if status not in (200, 201):
            detail = f"payment provider answered {status} to refund {request.key}: {_error_message(response)}"
            if 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS:
                raise RefundRejected(detail)
            raise RefundUnavailable(detail)
        try:
            refund = RefundObject.model_validate_json(response.content)
        except ValidationError as exc:
            raise RefundUnavailable(
                f"payment provider answered {status} to refund {request.key} with an unexpected body: "
                f"{_validation_summary(exc)}"
            ) from exc
        asked = (body.payment, body.amount, body.currency)
        if (refund.payment, refund.amount, refund.currency) != asked:
            # Not retryable: the provider holds another refund under our key. Someone has to reconcile it.
            raise RefundRejected(
                f"payment provider answered refund {request.key} with {refund.id}, a refund of "
                f"{refund.amount} {refund.currency} of payment {refund.payment}, not {body.amount} {body.currency} "
                f"of {body.payment}"
            )
        if refund.status in ("failed", "canceled"):
            raise RefundRejected(f"payment provider's refund {refund.id} for {request.key} is {refund.status}")
        if refund.status != "succeeded":  # pending: not made yet; asking again with the key reads it when it is
            raise RefundUnavailable(f"payment provider's refund {refund.id} for {request.key} is {refund.status}")
        return RefundResult(
            provider_ref=refund.id,
            status=refund.status,
            amount=refund.amount,
            currency=refund.currency,
            created_at=refund.created.astimezone(UTC),
        )


def _error_message(response: httpx.Response) -> str:
    """The provider's error message, or the start of whatever it sent."""
    try:
        return ProviderError.model_validate_json(response.content).error.message
    except ValidationError:
        return response.text[:300] or "(no body)"


def provider_from_settings(settings: Settings, http: httpx.AsyncClient) -> HttpRefundProvider:
    return HttpRefundProvider(settings.payment_provider_url, settings.payment_provider_key, http)
