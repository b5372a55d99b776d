"""What every channel mapper shares: the result, the three refusals, and the careful steps between raw bytes and
a canonical Order (JSON without floats, field errors listed one by one, whole numbers that cannot explode)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, NoReturn, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError

from models.order import Order


class ChannelOrder(BaseModel):
    """A platform's new order, mapped: the canonical order plus where it came from."""

    model_config = ConfigDict(frozen=True)
    order: Order
    channel_order_id: str  # the platform's own id (Shopify order id, Taobao tid, JD orderId)
    event: str  # what the platform said happened (Shopify topic, Taobao/JD order state)


class ChannelError(Exception):
    """A channel webhook we cannot turn into an order."""


class UnknownChannel(ChannelError, ValueError):
    """No mapper for this channel (the route answers 404)."""


class ChannelSignatureError(ChannelError):
    """Missing or wrong signature, or no secret to check it with (401). Nothing was parsed."""


class ChannelPayloadError(ChannelError):
    """Correctly signed, but not a usable order (422). `errors` lists every problem, one per field."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("webhook payload is not a usable order: " + "; ".join(errors))


@dataclass(frozen=True)
class OrderOwner:
    """Who a channel's orders belong to (platform orders name neither). None: not configured for the channel."""

    channel: str
    customer_id: str | None
    sales_rep: str | None

    def problems(self) -> list[str]:
        return [
            f"settings.{setting}[{self.channel!r}]: not configured"
            for setting, value in (("channel_customer_ids", self.customer_id), ("channel_sales_reps", self.sales_rep))
            if not value
        ]


class PlatformModel(BaseModel):
    """A platform payload: unknown fields ignored (platforms add fields all the time), numbers accepted where
    text is expected (relays turn zip codes and phone numbers into numbers)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


def _platform_id(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# A platform's order id, as the tail of our order_no ("SHOPIFY-<id>"): short enough and safe for the pattern.
PlatformId = Annotated[
    str,
    BeforeValidator(_platform_id),
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$"),
]


def _whole_number(value: object) -> object:
    # Pydantic's own int parsing turns Decimal("1E+999999") into a 1,000,000-digit int (and raises a bare
    # ValueError, not a ValidationError), so decimals and strings are checked here first; and `true` is not 1.
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value() or value.adjusted() > 9:
            raise ValueError("must be a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 9):
            raise ValueError("must be a whole number")
        return int(text)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
# The seller's own SKU code on the platform: it is our SKU.
SellerSku = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (Starlette's Headers is case-insensitive, a plain dict is not)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def hmac_sha256(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def signature_matches(expected: str, received: str | None) -> bool:
    if not received:
        return False
    return hmac.compare_digest(expected.encode(), received.strip().encode("utf-8", "replace"))


def hex_hmac_headers(header_name: str, body: bytes, secret: str) -> dict[str, str]:
    """Upper-case hex HMAC-SHA256 of the raw body in one header (the Taobao and JD pushes)."""
    return {header_name: hmac_sha256(secret, body).hex().upper()}


def hex_hmac_matches(header_name: str, body: bytes, headers: Mapping[str, str], secret: str) -> bool:
    received = header(headers, header_name)
    expected = hex_hmac_headers(header_name, body, secret)[header_name]
    return signature_matches(expected, received.upper() if received else None)


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The body as JSON: UTF-8 only, decimals as Decimal (never float), no NaN/Infinity."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=Decimal, parse_constant=_no_constants)
    except RecursionError:
        raise ChannelPayloadError(["body: JSON nested too deeply"]) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, over-long integer literals
        raise ChannelPayloadError([f"body: not JSON ({exc})"]) from None


def field_errors(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, `path: message` (input values left out: they may be personal data)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        lines.append(f"{path or 'body'}: {error['msg']}")
    return lines


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: object, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ChannelPayloadError(field_errors(exc, prefix)) from None


def build_order(fields: dict[str, Any], owner: OrderOwner) -> Order:
    """The canonical order from mapped fields; the settings' and the Order model's problems reported together."""
    problems = owner.problems()
    # A stand-in owner keeps the order's other problems visible; the order is refused anyway.
    placeholder = "unconfigured"
    data = {**fields, "customer_id": owner.customer_id or placeholder, "sales_rep": owner.sales_rep or placeholder}
    try:
        order = Order.model_validate(data)
    except ValidationError as exc:
        raise ChannelPayloadError([*problems, *field_errors(exc, "order")]) from None
    if problems:
        raise ChannelPayloadError(problems)
    return order
