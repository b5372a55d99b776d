"""What the relay hands a sender, what a sender raises, and the shape every sender has."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class OutgoingNotice:
    """One claimed outbox row, detached from the database: senders never see a session."""

    id: int
    key: str  # the outbox's unique key: the same notice has the same key on every attempt
    channel: str
    order_no: str
    kind: str
    recipient: str
    subject: str
    body: str
    attempt: int  # 1 on the first try


class DeliveryError(Exception):
    """This attempt failed (server down, timeout, 5xx, 4xx SMTP reply): the relay tries again later."""


class ChannelUnavailable(DeliveryError):
    """The server or gateway itself is down or refuses us (unreachable, 5xx, 429, bad credentials): the relay
    puts the channel's other notices of this sweep back untried instead of spending an attempt on each."""


class PermanentDeliveryError(DeliveryError):
    """The far end refused this notice for good (bad address or number): no retry, the row is 'failed'."""


class Sender(Protocol):
    """Sends one notice on one channel; blocking (the relay runs in a worker thread)."""

    @property
    def channel(self) -> str: ...

    def send(self, notice: OutgoingNotice) -> None:
        """Return once the far end accepted the notice; raise DeliveryError (or PermanentDeliveryError)."""
        ...

    def close(self) -> None: ...


def key_digest(key: str) -> str:
    """A stable, header-safe token for an outbox key (the key holds ':' and the recipient's address)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
