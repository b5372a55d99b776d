"""Sales channels' order webhooks -> canonical orders (POST /webhooks/channels/{channel} calls read_channel_order).

    shopify  header X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256(raw body)      (channel_shopify_secret)
    taobao   header X-Top-Sign = upper-hex HMAC-SHA256(raw body)              (channel_taobao_secret)
    jd       header X-Jd-Sign = hex HMAC-SHA256(raw body), any case            (channel_jd_secret)

The signature is checked before a byte of the body is parsed. Each mapper module documents its platform's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.config import Settings
from integrations.channels import jd, shopify, taobao
from integrations.channels.base import (
    ChannelError,
    ChannelOrder,
    ChannelPayloadError,
    ChannelSignatureError,
    OrderOwner,
    UnknownChannel,
)

__all__ = [
    "CHANNELS",
    "ChannelError",
    "ChannelOrder",
    "ChannelPayloadError",
    "ChannelSignatureError",
    "UnknownChannel",
    "read_channel_order",
    "sign",
]


@dataclass(frozen=True)
class _Mapper:
    secret: Callable[[Settings], str]
    sign: Callable[[bytes, str], dict[str, str]]
    verify: Callable[[bytes, Mapping[str, str], str], bool]
    read_order: Callable[[bytes, Mapping[str, str], OrderOwner], ChannelOrder | None]


_MAPPERS: dict[str, _Mapper] = {
    shopify.CHANNEL: _Mapper(lambda s: s.channel_shopify_secret, shopify.sign, shopify.verify, shopify.read_order),
    taobao.CHANNEL: _Mapper(lambda s: s.channel_taobao_secret, taobao.sign, taobao.verify, taobao.read_order),
    jd.CHANNEL: _Mapper(lambda s: s.channel_jd_secret, jd.sign, jd.verify, jd.read_order),
}
CHANNELS = frozenset(_MAPPERS)


def read_channel_order(
    channel: str, body: bytes, headers: Mapping[str, str], settings: Settings
) -> ChannelOrder | None:
    """The new order a channel's webhook announces, or None for a signed event that is not a new order.

    Raises UnknownChannel (no mapper), ChannelSignatureError (no secret configured, or the signature is missing
    or wrong: the body is not parsed) and ChannelPayloadError (signed but unusable; `.errors` lists why)."""
    mapper, secret = _mapper_and_secret(channel, settings)
    if not mapper.verify(body, headers, secret):
        raise ChannelSignatureError(f"channel {channel}: webhook signature is missing or does not match")
    owner = OrderOwner(
        channel=channel,
        customer_id=settings.channel_customer_ids.get(channel),
        sales_rep=settings.channel_sales_reps.get(channel),
    )
    return mapper.read_order(body, headers, owner)


def sign(channel: str, body: bytes, settings: Settings) -> dict[str, str]:
    """The headers the platform would send with `body` (signature, and Shopify's orders/create topic)."""
    mapper, secret = _mapper_and_secret(channel, settings)
    return mapper.sign(body, secret)


def _mapper_and_secret(channel: str, settings: Settings) -> tuple[_Mapper, str]:
    mapper = _MAPPERS.get(channel)
    if mapper is None:
        raise UnknownChannel(f"unknown channel {channel!r} (channels: {', '.join(sorted(_MAPPERS))})")
    secret = mapper.secret(settings)
    if not secret:
        raise ChannelSignatureError(f"channel {channel} has no webhook secret configured")
    return mapper, secret
