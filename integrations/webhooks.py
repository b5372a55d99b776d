"""Outgoing webhooks (the automations' webhook action): a JSON POST signed with HMAC-SHA256.

Headers: `X-Orderflow-Signature: sha256=<hex HMAC of the raw body with the webhook secret>` (the receiver
recomputes it over the bytes it got and compares in constant time), `X-Orderflow-Delivery: <step key>` (the same
on every try of one step, so a receiver can drop a repeat), `Content-Type: application/json`.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx

SIGNATURE_HEADER = "X-Orderflow-Signature"
DELIVERY_HEADER = "X-Orderflow-Delivery"


class WebhookError(RuntimeError):
    """The far end did not take it (an error status, or no answer): worth trying again later."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(secret, body), header)


async def post(client: httpx.AsyncClient, url: str, body: bytes, *, secret: str, delivery: str) -> int:
    """POST the body; the status code when the far end answered 2xx, WebhookError otherwise."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: delivery,
    }
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise WebhookError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise WebhookError(f"POST {url}: HTTP {response.status_code} {response.text[:200]}")
    return response.status_code
