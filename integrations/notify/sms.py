"""SMS through an HTTP gateway in MessageBird's REST shape, and that API's wire format.

    POST {sms_gateway_url}/messages
    Authorization: AccessKey <sms_gateway_key>
    {"recipients": ["8613800000000"], "originator": "orderflow", "body": "...", "reference": "<outbox key>"}
    → 201 {"id": "...", "reference": "...", "recipients": {"totalCount": 1, "totalSentCount": 1, ...}, ...}

`reference` is the outbox key, so a gateway (ours dedupes on it: dev/simulator/sms_gateway.py) can
recognise a notice sent twice. The wire models live here, beside the client that owns the contract; the
simulator imports them to answer in exactly that shape.
"""

from __future__ import annotations

import re

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from core.config import Settings
from integrations.notify.base import ChannelUnavailable, DeliveryError, OutgoingNotice, PermanentDeliveryError

MESSAGES_PATH = "/messages"


class SmsSubmit(BaseModel):
    recipients: list[str] = Field(min_length=1)
    originator: str = Field(min_length=1, max_length=17)
    body: str = Field(min_length=1)
    reference: str | None = None


class SmsRecipientCounts(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    total_count: int = Field(alias="totalCount")
    total_sent_count: int = Field(alias="totalSentCount")


class SmsAccepted(BaseModel):
    """The gateway's answer to a submit (the fields we read; the real API sends more)."""

    model_config = ConfigDict(populate_by_name=True)
    id: str
    reference: str | None = None
    originator: str
    body: str
    created_datetime: AwareDatetime = Field(alias="createdDatetime")
    recipients: SmsRecipientCounts


def msisdn(phone: str) -> str:
    """The number as the gateway wants it: digits only ('+86 138-0000-0000' → '8613800000000')."""
    digits = re.sub(r"\D", "", phone)
    if not 6 <= len(digits) <= 15:  # E.164 allows at most 15 digits
        raise PermanentDeliveryError(f"not a phone number: {phone!r}")
    return digits


class SmsGatewaySender:
    channel = "sms"

    def __init__(self, base_url: str, api_key: str, originator: str, *, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + MESSAGES_PATH
        self.originator = originator
        self._http = httpx.Client(timeout=timeout, headers={"Authorization": f"AccessKey {api_key}"})

    @classmethod
    def from_settings(cls, settings: Settings) -> SmsGatewaySender:
        return cls(settings.sms_gateway_url, settings.sms_gateway_key, settings.sms_originator)

    def send(self, notice: OutgoingNotice) -> None:
        submit = SmsSubmit(
            recipients=[msisdn(notice.recipient)], originator=self.originator, body=notice.body, reference=notice.key
        )
        try:
            response = self._http.post(self.url, json=submit.model_dump())
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"SMS gateway {self.url} unreachable: {exc!r}") from exc
        detail = f"SMS gateway answered {response.status_code}: {response.text[:300]}"
        if response.status_code in (400, 422):  # the gateway will never take this message
            raise PermanentDeliveryError(detail)
        if response.status_code not in (200, 201):  # 401/403 (a key ops can fix), 429, 5xx: try again later
            raise ChannelUnavailable(detail)
        try:
            accepted = SmsAccepted.model_validate_json(response.content)
        except ValidationError as exc:
            raise DeliveryError(f"SMS gateway answered {response.status_code} with an unexpected body: {exc}") from exc
        if accepted.recipients.total_count < 1:
            raise DeliveryError(f"SMS gateway accepted no recipient: {response.text[:300]}")

    def close(self) -> None:
        self._http.close()
