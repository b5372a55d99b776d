"""A simulated SMS gateway (MessageBird's REST shape, see integrations/notify/sms.py) as a FastAPI router.

Mounted on the carrier simulator under /sms, so `ORDERFLOW_SMS_GATEWAY_URL=http://127.0.0.1:8081/sms`:

    POST   /sms/messages   send: {recipients, originator, body, reference}, `Authorization: AccessKey <key>`.
                           201 with the message; a reference seen before answers 200 with the first message and
                           stores nothing new (the gateway dedupes a notice the relay sent twice)
    GET    /sms/messages   what was received, oldest first, each with how many times it was submitted
    DELETE /sms/messages   forget everything (and the faults)
    POST   /sms/faults     {"times": N, "status": 503}: the next N sends answer that status and store nothing
    DELETE /sms/faults     no more faults

State is in memory, per router: each `sms_gateway_router()` call is a gateway of its own.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from integrations.notify.sms import MESSAGES_PATH, SmsAccepted, SmsRecipientCounts, SmsSubmit

SIM_SMS_KEY = "sim-sms-key"  # Settings.sms_gateway_key's default


class SmsFault(BaseModel):
    times: int = Field(1, ge=1)
    status: int = Field(503, ge=400, le=599)


class ReceivedSms(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    reference: str | None
    originator: str
    recipients: list[str]
    body: str
    created_datetime: AwareDatetime = Field(alias="createdDatetime")
    submissions: int  # how many POSTs carried this reference (1 unless a sender retried it)


class ReceivedSmsList(BaseModel):
    count: int
    items: list[ReceivedSms]


@dataclass
class _Gateway:
    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[ReceivedSms] = field(default_factory=list)
    by_reference: dict[str, ReceivedSms] = field(default_factory=dict)
    fault: SmsFault | None = None

    def take_fault(self) -> int | None:
        with self.lock:
            if self.fault is None:
                return None
            status = self.fault.status
            self.fault = self.fault.model_copy(update={"times": self.fault.times - 1}) if self.fault.times > 1 else None
            return status

    def submit(self, submit: SmsSubmit) -> tuple[ReceivedSms, bool]:
        with self.lock:
            seen = self.by_reference.get(submit.reference) if submit.reference else None
            if seen is not None:
                seen.submissions += 1
                return seen, False
            message = ReceivedSms(
                id=uuid.uuid4().hex,
                reference=submit.reference,
                originator=submit.originator,
                recipients=submit.recipients,
                body=submit.body,
                created_datetime=datetime.now(UTC),
                submissions=1,
            )
            self.messages.append(message)
            if submit.reference:
                self.by_reference[submit.reference] = message
            return message, True

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.by_reference.clear()
            self.fault = None


def _error(status: int, code: int, description: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"errors": [{"code": code, "description": description}]})


def sms_gateway_router(api_key: str = SIM_SMS_KEY, prefix: str = "/sms") -> APIRouter:
    gateway = _Gateway()
    router = APIRouter(prefix=prefix, tags=["sms gateway (simulated)"])

    @router.post(MESSAGES_PATH, status_code=201, response_model=SmsAccepted, response_model_by_alias=True)
    async def send(
        submit: SmsSubmit, response: Response, authorization: Annotated[str, Header()] = ""
    ) -> SmsAccepted | JSONResponse:
        if authorization != f"AccessKey {api_key}":
            return _error(401, 2, "Request not allowed (incorrect access_key)")
        fault = gateway.take_fault()
        if fault is not None:
            return _error(fault, 99, "Simulated gateway fault")
        message, created = gateway.submit(submit)
        response.status_code = 201 if created else 200
        return SmsAccepted(
            id=message.id,
            reference=message.reference,
            originator=message.originator,
            body=message.body,
            created_datetime=message.created_datetime,
            recipients=SmsRecipientCounts(
                total_count=len(message.recipients), total_sent_count=len(message.recipients)
            ),
        )

    @router.get(MESSAGES_PATH, response_model=ReceivedSmsList, response_model_by_alias=True)
    async def received() -> ReceivedSmsList:
        with gateway.lock:
            items = [message.model_copy() for message in gateway.messages]
        return ReceivedSmsList(count=len(items), items=items)

    @router.delete(MESSAGES_PATH, status_code=204)
    async def reset() -> None:
        gateway.reset()

    @router.post("/faults", status_code=201)
    async def set_fault(fault: SmsFault) -> SmsFault:
        with gateway.lock:
            gateway.fault = fault
        return fault

    @router.delete("/faults", status_code=204)
    async def clear_fault() -> None:
        with gateway.lock:
            gateway.fault = None

    return router
