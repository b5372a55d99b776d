"""Kuaidi100-style carrier aggregator (carrier code `kuaidi100`): real-time query, subscription, push.

    query      POST {base}/poll/query.do   form: customer, sign = MD5(param + key + customer) upper-case,
                                           param = {"com", "num", "resultv2", "order"}
    subscribe  POST {base}/poll            form: schema=json, param = {"company", "number", "key",
                                           "parameters": {"callbackurl", "salt", "resultv2"}}
    push       Kuaidi100 POSTs to the callback URL a form: param = {"status", "billstatus", "message",
                                           "lastResult": <a query answer>}, sign = MD5(param + salt) upper-case

Trace times are Asia/Shanghai wall-clock times without an offset. The query needs the company code `com`:
it is the client's default company, or the prefix of a tracking number written `com:number`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qs

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from integrations.carriers.base import CarrierError, UnknownParcel
from integrations.carriers.mapping import (
    china_local_to_utc,
    extract_signer,
    json_body,
    kuaidi100_event_status,
    kuaidi100_state,
    raise_if_unavailable,
    transport_error,
)
from models.status import TrackingStatus
from models.tracking import TrackingEventIn, TrackingSnapshot

CODE: Final = "kuaidi100"
QUERY_PATH: Final = "/poll/query.do"
SUBSCRIBE_PATH: Final = "/poll"
# What the push endpoint must answer, or Kuaidi100 pushes again.
PUSH_ACK: Final[dict[str, object]] = {"result": True, "returnCode": "200", "message": "成功"}
# returnCode of a failed query: 500 means "no result for this number (yet)".
NO_RESULT: Final = "500"


def _to_str(value: object) -> object:
    """Kuaidi100 sends codes as strings or numbers, depending on the endpoint."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


Code = Annotated[str, BeforeValidator(_to_str)]


class Kuaidi100Trace(BaseModel):
    model_config = ConfigDict(extra="ignore")
    time: str = ""
    ftime: str = ""
    context: str = ""
    location: str | None = None
    areaName: str | None = None  # noqa: N815 (wire name)
    status: str | None = None  # state name, with resultv2 >= 1
    statusCode: Code | None = None  # noqa: N815  advanced state code, with resultv2=4


class Kuaidi100Answer(BaseModel):
    """A query answer (also the push's `lastResult`). A failed query has `result: false` and a returnCode."""

    model_config = ConfigDict(extra="ignore")
    message: str = ""
    nu: str = ""
    com: str = ""
    ischeck: Code = "0"
    condition: str = ""
    status: Code = ""
    state: Code | None = None
    data: list[Kuaidi100Trace] = []
    result: bool | None = None
    returnCode: Code | None = None  # noqa: N815


class Kuaidi100Push(BaseModel):
    """The push's `param`. status: polling | shutdown | abort | updateall."""

    model_config = ConfigDict(extra="ignore")
    status: str
    billstatus: str = ""
    message: str = ""
    autoCheck: Code | None = None  # noqa: N815
    comOld: str = ""  # noqa: N815
    comNew: str = ""  # noqa: N815
    lastResult: Kuaidi100Answer | None = None  # noqa: N815


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def query_sign(param: str, key: str, customer: str) -> str:
    return _md5_upper(param + key + customer)


def push_sign(param: str, salt: str) -> str:
    return _md5_upper(param + salt)


def verify_push_signature(param: str, sign: str | None, salt: str) -> bool:
    """Kuaidi100 signs a push with MD5(param + salt), upper-case. No salt or no sign: refused."""
    if not salt or not sign:
        return False
    return hmac.compare_digest(push_sign(param, salt).encode(), sign.strip().upper().encode())


def parse_push_form(body: bytes) -> tuple[str, str | None]:
    """(param, sign) from the raw application/x-www-form-urlencoded push body."""
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise CarrierError(f"{CODE}: push body is not UTF-8") from exc
    params = fields.get("param")
    if not params:
        raise CarrierError(f"{CODE}: push body has no `param` field")
    signs = fields.get("sign")
    return params[0], (signs[0] if signs else None)


def parse_push(param: str | bytes, *, default_company: str = "") -> TrackingSnapshot | None:
    """A push's `param` as a snapshot; None when it carries no trace (e.g. an `abort` after 3 days without
    any record). The tracking number is `com:number` unless the company is `default_company`."""
    try:
        push = Kuaidi100Push.model_validate_json(param)
    except ValidationError as exc:
        raise CarrierError(f"{CODE}: malformed push: {exc.error_count()} errors") from exc
    answer = push.lastResult
    if answer is None or not answer.nu or (not answer.data and answer.state is None):
        return None
    number = answer.nu if not answer.com or answer.com == default_company else f"{answer.com}:{answer.nu}"
    return to_snapshot(answer, number, newest_first=True)


def split_number(tracking_no: str, default_company: str) -> tuple[str, str]:
    """`com:number` → (com, number); a bare number uses the default company."""
    company, sep, number = tracking_no.partition(":")
    if sep:
        return company.strip().lower(), number.strip()
    return default_company, tracking_no.strip()


def to_snapshot(answer: Kuaidi100Answer, tracking_no: str, *, newest_first: bool) -> TrackingSnapshot:
    """`newest_first`: the order of `answer.data` (a push is newest first; our queries ask for oldest first)."""
    try:
        events = [
            TrackingEventIn(
                status=kuaidi100_event_status(trace.statusCode, trace.status, trace.context),
                at=china_local_to_utc(trace.time or trace.ftime),
                location=trace.location or trace.areaName or "",
                description=trace.context,
            )
            for trace in answer.data
        ]
    except ValueError as exc:
        raise CarrierError(f"{CODE}: unreadable trace for {tracking_no!r}: {exc}") from exc
    if newest_first:
        events.reverse()
    events.sort(key=lambda event: event.at)  # stable: lines with the same time keep their order
    if answer.state is not None and answer.state.strip():
        status = kuaidi100_state(answer.state)
    else:
        status = events[-1].status if events else TrackingStatus.PENDING
    signed_by: str | None = None
    signed_at: datetime | None = None
    if status is TrackingStatus.DELIVERED:
        delivered = [e for e in events if e.status is TrackingStatus.DELIVERED] or events[-1:]
        signed_at = delivered[-1].at if delivered else None
        signed_by = next((name for e in reversed(delivered) if (name := extract_signer(e.description))), None)
    return TrackingSnapshot(
        carrier=CODE,
        tracking_no=tracking_no,
        status=status,
        events=events,
        signed_by=signed_by,
        signed_at=signed_at,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Kuaidi100Client:
    """`track` is the real-time query; `subscribe` asks Kuaidi100 to push changes to a callback URL."""

    code: str = CODE

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        customer: str,
        key: str,
        company: str,
        salt: str = "",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._customer = customer
        self._key = key
        self._company = company
        self._salt = salt
        self._clock = clock

    async def track(self, tracking_no: str) -> TrackingSnapshot:
        company, number = split_number(tracking_no, self._company)
        param = json.dumps(
            {"com": company, "num": number, "resultv2": "4", "order": "asc"}, ensure_ascii=False, separators=(",", ":")
        )
        form = {"customer": self._customer, "sign": query_sign(param, self._key, self._customer), "param": param}
        body = await self._post(QUERY_PATH, form)
        try:
            answer = Kuaidi100Answer.model_validate(body)
        except ValidationError as exc:
            raise CarrierError(f"{CODE}: malformed answer for {tracking_no!r}: {exc.error_count()} errors") from exc
        if answer.result is False:
            if answer.returnCode == NO_RESULT:
                raise UnknownParcel(f"{CODE}: no result for {tracking_no!r}: {answer.message}")
            raise CarrierError(f"{CODE}: query refused ({answer.returnCode}): {answer.message}")
        if answer.nu and answer.nu != number:
            raise CarrierError(f"{CODE}: asked for {number!r}, got {answer.nu!r}")
        return to_snapshot(answer, tracking_no, newest_first=False)

    async def subscribe(self, tracking_no: str, callback_url: str) -> None:
        """Ask for pushes to `callback_url`, signed with this client's salt. Subscribing twice is fine."""
        company, number = split_number(tracking_no, self._company)
        parameters: dict[str, str] = {"callbackurl": callback_url, "resultv2": "4"}
        if self._salt:
            parameters["salt"] = self._salt
        param = json.dumps(
            {"company": company, "number": number, "key": self._key, "parameters": parameters},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        body = await self._post(SUBSCRIBE_PATH, {"schema": "json", "param": param})
        if not isinstance(body, dict):
            raise CarrierError(f"{CODE}: malformed subscription answer for {tracking_no!r}")
        code = str(body.get("returnCode", ""))
        if body.get("result") is True or code in {"200", "501"}:  # 501: already subscribed
            return
        raise CarrierError(f"{CODE}: subscription of {tracking_no!r} refused ({code}): {body.get('message', '')}")

    async def _post(self, path: str, form: dict[str, str]) -> Any:
        url = self._base_url + path
        try:
            response = await self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            raise transport_error(CODE, url, exc) from exc
        raise_if_unavailable(CODE, response, self._clock())
        if response.status_code != 200:
            raise CarrierError(f"{CODE}: {url} answered HTTP {response.status_code}")
        return json_body(CODE, response)
