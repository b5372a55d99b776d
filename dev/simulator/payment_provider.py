"""A simulated payment provider (Stripe's REST shape, see integrations/payments/provider.py) as a FastAPI router.

Mounted on the carrier simulator under /pay, so `ORDERFLOW_PAYMENT_PROVIDER_URL=http://127.0.0.1:8081/pay`:

    POST   /pay/refunds    refund: {payment, amount, currency, reason}, `Authorization: Bearer <key>` (401
                           otherwise) and `Idempotency-Key` (400 without). 201 with the refund; the same key with
                           the same body answers 200 with the first refund and refunds nothing new, with another
                           body 400 (Stripe's idempotency_error); a body it cannot read 400; a refused payment 402
    GET    /pay/refunds    what was refunded, oldest first, each with how many times it was asked for
    DELETE /pay/refunds    forget everything (refunds, faults and refusals)
    POST   /pay/faults     {"times": N, "status": 503}: the next N refunds answer that status and store nothing
    DELETE /pay/faults     no more faults
    POST   /pay/refusals   {"payment": REF, "message": "..."}: refunds of that payment answer 402 with the message
    DELETE /pay/refusals   no more refusals

Errors answer `{"error": {"type", "message", "code"}}`, the client's `ProviderError`. State is in memory, per
router: each `payment_provider_router()` call is a provider of its own.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from integrations.payments.provider import (
    REFUNDS_PATH,
    ProviderError,
    ProviderErrorDetail,
    RefundCreate,
    RefundObject,
)

SIM_PAY_KEY = "sim-pay-key"  # Settings.payment_provider_key's default


class PaymentFault(BaseModel):
    times: int = Field(1, ge=1)
    status: int = Field(503, ge=400, le=599)


class PaymentRefusal(BaseModel):
    payment: str = Field(min_length=1)
    message: str = Field("This payment cannot be refunded.", min_length=1)


class ReceivedRefund(RefundObject):
    idempotency_key: str
    submissions: int  # how many POSTs carried this Idempotency-Key (1 unless a caller retried it)


class ReceivedRefundList(BaseModel):
    count: int
    items: list[ReceivedRefund]


@dataclass
class _Stored:
    asked: RefundCreate
    refund: RefundObject
    submissions: int = 1


@dataclass
class _Provider:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_key: dict[str, _Stored] = field(default_factory=dict)  # insertion order: oldest first
    fault: PaymentFault | None = None
    refusals: dict[str, str] = field(default_factory=dict)  # payment → message

    def take_fault(self) -> int | None:
        with self.lock:
            if self.fault is None:
                return None
            status = self.fault.status
            self.fault = self.fault.model_copy(update={"times": self.fault.times - 1}) if self.fault.times > 1 else None
            return status

    def refund(self, key: str, asked: RefundCreate) -> tuple[int, RefundObject] | JSONResponse:
        with self.lock:
            seen = self.by_key.get(key)
            if seen is not None:
                if seen.asked != asked:
                    return _error(
                        400,
                        "idempotency_error",
                        f"Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with: {key!r} was used for a refund of {seen.asked.amount} {seen.asked.currency} of "
                        f"payment {seen.asked.payment}",
                        code="idempotency_key_reused",
                    )
                seen.submissions += 1
                return 200, seen.refund
            refusal = self.refusals.get(asked.payment)
            if refusal is not None:
                return _error(402, "invalid_request_error", refusal, code="refund_refused")
            refund = RefundObject(
                id=f"re_{uuid.uuid4().hex[:24]}",
                status="succeeded",
                payment=asked.payment,
                amount=asked.amount,
                currency=asked.currency,
                reason=asked.reason,
                created=datetime.now(UTC),
            )
            self.by_key[key] = _Stored(asked=asked, refund=refund)
            return 201, refund

    def reset(self) -> None:
        with self.lock:
            self.by_key.clear()
            self.fault = None
            self.refusals.clear()


def _error(status: int, kind: str, message: str, *, code: str | None = None) -> JSONResponse:
    body = ProviderError(error=ProviderErrorDetail(type=kind, message=message, code=code))
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


def payment_provider_router(api_key: str = SIM_PAY_KEY, prefix: str = "/pay") -> APIRouter:
    provider = _Provider()
    router = APIRouter(prefix=prefix, tags=["payment provider (simulated)"])

    @router.post(
        REFUNDS_PATH,
        status_code=201,
        response_model=RefundObject,
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": RefundCreate.model_json_schema()}}}},
    )
    async def create_refund(
        request: Request,
        response: Response,
        authorization: Annotated[str, Header()] = "",
        idempotency_key: Annotated[str, Header()] = "",
    ) -> RefundObject | JSONResponse:
        if authorization != f"Bearer {api_key}":
            return _error(401, "invalid_request_error", "Invalid API Key provided", code="invalid_api_key")
        if not idempotency_key.strip():
            return _error(400, "invalid_request_error", "An Idempotency-Key header is required for refunds")
        fault = provider.take_fault()
        if fault is not None:
            return _error(fault, "api_error", "Simulated payment provider fault")
        try:
            asked = RefundCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
            )
            return _error(400, "invalid_request_error", f"Invalid refund: {problems}", code="parameter_invalid")
        answer = provider.refund(idempotency_key, asked)
        if isinstance(answer, JSONResponse):
            return answer
        response.status_code, refund = answer
        return refund

    @router.get(REFUNDS_PATH, response_model=ReceivedRefundList)
    async def received() -> ReceivedRefundList:
        with provider.lock:
            items = [
                ReceivedRefund(**stored.refund.model_dump(), idempotency_key=key, submissions=stored.submissions)
                for key, stored in provider.by_key.items()
            ]
        return ReceivedRefundList(count=len(items), items=items)

    @router.delete(REFUNDS_PATH, status_code=204)
    async def reset() -> None:
        provider.reset()

    @router.post("/faults", status_code=201)
    async def set_fault(fault: PaymentFault) -> PaymentFault:
        with provider.lock:
            provider.fault = fault
        return fault

    @router.delete("/faults", status_code=204)
    async def clear_fault() -> None:
        with provider.lock:
            provider.fault = None

    @router.post("/refusals", status_code=201)
    async def refuse(refusal: PaymentRefusal) -> PaymentRefusal:
        with provider.lock:
            provider.refusals[refusal.payment] = refusal.message
        return refusal

    @router.delete("/refusals", status_code=204)
    async def clear_refusals() -> None:
        with provider.lock:
            provider.refusals.clear()

    return router
